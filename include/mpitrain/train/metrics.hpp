// Metric aggregation: Module::log() values are kept as (sum, count) per name over an epoch and
// combined across ranks with one allreduce, so means are weighted by examples, as Lightning's.
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mpitrain/engine/engine.hpp"

namespace mpitrain {

/// Which way a metric improves: the Trainer keeps best_<name> by it (and EarlyStopping /
/// ModelCheckpoint take their own mode option).
enum class MetricMode { Min, Max };

/// How Module::log treats a value; name the fields, e.g. log("val_acc", a, {.prog_bar = true,
/// .mode = MetricMode::Max}, n) (designated initialisers, in field order).
struct LogOptions {
  bool on_step = false;   ///< also report every step's value
  bool on_epoch = true;   ///< aggregate over the epoch (mean, weighted by batch size)
  bool prog_bar = false;  ///< show in the progress line
  bool sync_dist = true;  ///< aggregate across ranks (sum and count allreduced)
  MetricMode mode = MetricMode::Min;  ///< lower is better unless Max (accuracies)
};

/// Where Module::log() goes during fit / validate / test.
class MetricSink {
 public:
  void add(const std::string& name, double value, double weight, const LogOptions& options);
  /// The mode a metric was logged with (Min for names never logged).
  MetricMode mode_of(const std::string& name) const;
  /// Values logged with on_step since the last call (for progress lines and step loggers).
  std::map<std::string, double> take_step_values();
  /// Collective (through the engine): the epoch means, synced across ranks where asked; resets.
  std::map<std::string, double> reduce_epoch(Engine& engine);
  const std::vector<std::string>& prog_bar_names() const { return prog_bar_; }
  /// Collective: the epoch's sums so far, totalled across ranks where synced (for a checkpoint);
  /// leaves this sink unchanged.
  nlohmann::json state(Engine& engine) const;
  /// Resume: every rank gets the same names (the reduction needs them); only the rank with
  /// `with_values` gets the sums, so that the next reduce_epoch counts them once.
  void load_state(const nlohmann::json& j, bool with_values);

 private:
  struct Acc {
    double sum = 0, count = 0;
    bool sync = true;
  };
  /// Collective: the accumulators with synced ones summed over ranks.
  std::map<std::string, Acc> totals(Engine& engine) const;
  std::map<std::string, Acc> epoch_;
  std::map<std::string, double> step_;
  std::vector<std::string> prog_bar_;
  std::map<std::string, MetricMode> modes_;
};

}  // namespace mpitrain
