// Metric aggregation: Module::log() values are kept as (sum, count) per name over an epoch and
// combined across ranks with one allreduce, so means are weighted by examples, as Lightning's.
#pragma once
#include <map>
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

 private:
  struct Acc {
    double sum = 0, count = 0;
    bool sync = true;
  };
  std::map<std::string, Acc> epoch_;
  std::map<std::string, double> step_;
  std::vector<std::string> prog_bar_;
};

}  // namespace mpitrain
