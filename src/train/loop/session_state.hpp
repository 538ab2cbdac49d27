// The worker side of one FunctionTrainer job: what get_context / report / get_checkpoint /
// prepare_model see while the training function runs. One per worker process (a worker serves
// one task; an SPMD rank runs one fit at a time), reachable through Session::current().
#pragma once
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "checkpoint_manager.hpp"
#include "mpitrain/engine/engine.hpp"
#include "mpitrain/launch/task_context.hpp"
#include "mpitrain/strategy/strategy.hpp"
#include "mpitrain/train/loop/prepare.hpp"
#include "mpitrain/train/loop/session.hpp"

namespace mpitrain::loop {

struct PreparedModel::State {
  torch::nn::Module* module = nullptr;
  torch::optim::Optimizer* optimizer = nullptr;
  std::unique_ptr<Strategy> strategy;
  int64_t steps = 0;
  int rank = 0;
};

namespace detail {

class Session {
 public:
  /// Collective: resolves and checks the run directory (rank 0, agreed), reads its record of
  /// checkpoints. `payload` as FunctionTrainer sends it.
  Session(TaskContext& ctx, const nlohmann::json& payload);
  ~Session();  ///< the strategies first, then the engine
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  /// ConfigError when no training function runs in this process.
  static Session& current();

  const TrainContext& context() const { return context_; }
  TaskContext& task() { return ctx_; }
  /// The job's engine, built on first use; a strategy that needs the coordinator gets one (the
  /// FIFO engine is rebuilt if no model was prepared yet; else ConfigError).
  Engine& engine(bool needs_coordinator = false);
  PreparedModel::State& add_model(std::unique_ptr<PreparedModel::State> s);

  void report(const std::map<std::string, double>& metrics, const std::optional<Checkpoint>& checkpoint);
  std::optional<Checkpoint> get_checkpoint();  ///< collective (agreed read errors)
  const std::map<std::string, double>& last_metrics() const { return last_metrics_; }

 private:
  TaskContext& ctx_;
  TrainContext context_;
  std::unique_ptr<CheckpointManager> manager_;  // rank 0
  std::string checkpoint_path_;                 // what get_checkpoint() reads ("" none)
  std::map<std::string, double> last_metrics_;
  std::unique_ptr<Engine> engine_;
  bool coordinated_ = false;
  std::vector<std::unique_ptr<PreparedModel::State>> models_;
};

/// The run directory the last Session of this process used, then "" (SPMD: for a Result after a
/// failure; FunctionTrainer::fit takes it at its start too, so that an earlier fit's never shows).
std::string take_last_run_dir();

}  // namespace detail
}  // namespace mpitrain::loop

namespace mpitrain::loop::detail {
/// "<loop>_<YYYY-MM-DD_HH-MM-SS>" (local time), Ray's default run name.
std::string default_run_name(const std::string& loop);
/// Creates `dir` if need be; ConfigError when it cannot be a run directory, or when it holds an
/// earlier run's checkpoints and the run neither resumes nor relaunches.
void prepare_run_dir(const std::string& dir, bool continuing);
}  // namespace mpitrain::loop::detail
