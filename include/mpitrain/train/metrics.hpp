// Metric aggregation: Module::log() values are kept as (sum, count) per name over an epoch and
// combined across ranks with one allreduce, so means are weighted by examples, as Lightning's.
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mpitrain/engine/engine.hpp"

namespace mpitrain {

class MetricSink {
 public:
  void add(const std::string& name, double value, double weight, bool on_step, bool on_epoch, bool sync_dist,
           bool prog_bar);
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
};

}  // namespace mpitrain
