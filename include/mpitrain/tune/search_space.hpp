// Search spaces as Ray Tune writes them (DESIGN §3 Sweeps): a JSON object, one key per
// hyperparameter, each a constant or one domain:
//   {"layer_1": {"choice": [32, 64, 128]}, "lr": {"loguniform": [1e-4, 1e-1]}, "epochs_x": 3,
//    "opt": {"grid_search": ["sgd", "adam"]}, "m": {"uniform": [0.5, 0.99]},
//    "b": {"quniform": [16, 128, 16]}, "seed": {"randint": [0, 100]}}
// Trials are grid × samples as in Tune: every combination of the grid_search keys, each
// num_samples times with the other keys drawn; the same seed gives the same trials.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace mpitrain::tune {

struct Domain {
  enum class Kind { Constant, Choice, Grid, Uniform, QUniform, LogUniform, RandInt } kind = Kind::Constant;
  nlohmann::json values;      ///< Constant: the value; Choice/Grid: the candidates
  double low = 0, high = 0, q = 0;
};

class SearchSpace {
 public:
  /// ConfigError naming the key and the problem (unknown distribution, low > high, empty choice).
  static SearchSpace from_json(const nlohmann::json& space);
  /// ConfigError for an unreadable file or a JSON error (with its line and column).
  static SearchSpace from_file(const std::string& path);

  /// num_samples trials per grid combination (keys sorted by name, as JSON objects hold them).
  std::vector<nlohmann::json> generate(int num_samples, uint64_t seed) const;
  const std::vector<std::pair<std::string, Domain>>& domains() const { return domains_; }

 private:
  std::vector<std::pair<std::string, Domain>> domains_;
};

}  // namespace mpitrain::tune
