// Asynchronous successive halving (ASHA; Li et al., MLSys 2020; Ray Tune's ASHAScheduler) whose
// rung records live in a directory, so trials that run as separate processes or separate Slurm
// array tasks share one scheduler with no head node. Rungs sit at grace_period * rf^k (k >= 0,
// <= max_t). A trial reaching a rung is compared with what earlier trials recorded there: below
// the top 1/rf of them (the (1 - 1/rf) quantile, linearly interpolated) it stops; then its value
// is recorded. Decisions are asynchronous by design: no trial ever waits for another. A record
// is one line appended under an exclusive lock (flock), so concurrent writers never interleave.
// NaN and infinite values rank last.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace mpitrain::tune {

struct AshaOptions {
  std::string metric;
  std::string mode = "min";        ///< min | max
  std::string time_attr = "epoch"; ///< epoch | step (what `t` counts)
  double grace_period = 1;
  double reduction_factor = 4;
  double max_t = 100;
  void validate() const;           ///< ConfigError naming the option
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(AshaOptions, metric, mode, time_attr, grace_period, reduction_factor, max_t)

class Asha {
 public:
  enum class Decision { Continue, Stop };
  /// `dir` holds the rung records (created if missing).
  Asha(AshaOptions options, std::string dir);
  /// A result of `trial` at time `t` (>= 1). Stop when t >= max_t or the trial falls below a rung's cutoff.
  Decision on_result(const std::string& trial, double t, double value) const;
  std::vector<double> milestones() const;
  /// Values recorded at `milestone` (sign-normalised: larger is better), in file order.
  std::vector<double> recorded(double milestone) const;

 private:
  std::string rung_file(double milestone) const;
  AshaOptions o_;
  std::string dir_;
};

/// numpy.percentile's default (linear) of `v` at q in [0, 100]; v non-empty.
double percentile(std::vector<double> v, double q);

}  // namespace mpitrain::tune
