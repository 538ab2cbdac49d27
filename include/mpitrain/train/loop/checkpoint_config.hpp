// Which checkpoints a training function's run keeps (Ray's CheckpointConfig); its own header so
// that the retention code (no tensors) stays light.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

namespace mpitrain::loop {

/// Which reported checkpoints stay on disk (Ray's CheckpointConfig).
struct CheckpointConfig {
  /// The best num_to_keep by the score (without one: the newest), plus the latest when it is not
  /// among them (a relaunch resumes from it). -1: keep all; 0 is refused (ConfigError).
  int num_to_keep = -1;
  std::string checkpoint_score_attribute;      ///< a reported metric; "": rank by recency
  std::string checkpoint_score_order = "max";  ///< "max" or "min"
};

void to_json(nlohmann::json& j, const CheckpointConfig& c);
void from_json(const nlohmann::json& j, CheckpointConfig& c);
/// ConfigError naming the field: num_to_keep 0 or below -1, an order other than max/min.
void validate(const CheckpointConfig& c);

}  // namespace mpitrain::loop
