// The worker side of Trainer::fit on one rank, as Lightning's loop reads:
//   run():  setup -> restore (resume) -> on_fit_start -> [epoch]* -> test -> on_fit_end -> result
//   epoch:  on_train_epoch_start -> [batch: training step, optimizer step]* -> validation
//           -> metrics -> on_train_epoch_end
// Everything optional is a callback (progress, loggers, EarlyStopping, ModelCheckpoint,
// preemption, the user's) and everything about gradients and the optimizer is the strategy's.
// fit_loop.cpp holds the loop, fit_loop_checkpoint.cpp saving and resuming.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mpitrain/data/data_loader.hpp"
#include "mpitrain/strategy/strategy.hpp"
#include "mpitrain/train/callback.hpp"
#include "mpitrain/train/callbacks/model_checkpoint.hpp"
#include "mpitrain/train/checkpoint.hpp"
#include "mpitrain/train/fit_result.hpp"
#include "mpitrain/train/metrics.hpp"
#include "mpitrain/train/placement.hpp"
#include "mpitrain/train/trainer.hpp"

namespace mpitrain::detail {

/// Binds a Module to the loop that runs it (rank, world size, where log() goes).
struct ModuleAccess {
  static void bind(Module& m, MetricSink* sink, int rank, int world_size) {
    m.sink_ = sink;
    m.rank_ = rank;
    m.world_size_ = world_size;
  }
};

/// A dataset already split across ranks (rank_local) is only shuffled here, by a seed of its own rank.
DistributedSampler sampler_for(const Dataset& ds, int n, int rank, bool shuffle, uint64_t seed);
/// An unshuffled loader of `ds` for evaluation (null for no dataset).
std::unique_ptr<DataLoader> loader_for(const std::shared_ptr<Dataset>& ds, int n, int rank, int64_t batch);
/// One pass of validation_step / test_step over a loader (at most `limit` batches; -1: all).
void run_evaluation(Module& m, DataLoader& loader, bool is_test, int64_t limit, const Placement& placement);

class FitLoop final : public FitLoopView {
 public:
  FitLoop(Module& module, const TrainerOptions& options, TaskContext& ctx, const FitInfo& info);
  ~FitLoop() override;
  FitResult run();

  // FitLoopView
  const TrainerOptions& options() const override { return o_; }
  Module& module() override { return m_; }
  TaskContext& task() override { return ctx_; }
  Engine& engine() override { return *engine_; }
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  int64_t epoch() const override { return epoch_; }
  int64_t global_step() const override { return steps_; }
  int64_t batches_in_epoch() const override { return batches_; }
  bool resumed() const override { return !resumed_from_.empty(); }
  const std::map<std::string, double>& step_metrics() const override { return step_values_; }
  const std::map<std::string, double>& epoch_metrics() const override { return last_; }
  bool last_epoch() const override;
  int64_t stopped_at_batch() const override { return stopped_at_batch_; }
  void request_stop(const std::string& reason) override;
  void request_preemption(int signal) override { preempted_by_ = signal; }
  void save_checkpoint(int64_t epoch, int64_t batch_in_epoch, std::optional<double> score) override;
  int64_t last_saved_step() const override { return last_saved_step_; }
  void report_result_metric(const std::string& name, double value) override { extra_metrics_[name] = value; }

 private:
  void setup();
  void build_callbacks();
  void restore();  // fit_loop_checkpoint.cpp
  void run_epoch();
  void prepare();
  void train_batch(const Batch& batch, int64_t b, bool sync);
  void agree_on_batch(const std::exception_ptr& failure, double loss);
  void optimizer_step();
  void end_epoch();
  void end_epoch_hooks();
  FitResult finish();
  bool max_steps_reached() const { return o_.max_steps > 0 && steps_ >= o_.max_steps; }
  nlohmann::json callback_states() const;
  void load_callback_states(const nlohmann::json& states);
  template <class F>
  void each_callback(F&& f) {
    for (auto& c : callbacks_) f(*c);
  }

  Module& m_;
  const TrainerOptions& o_;
  TaskContext& ctx_;
  const FitInfo& info_;
  const int rank_, world_;
  Placement placement_;  // device and memory format of the module and its batches
  MetricSink sink_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<Strategy> strategy_;
  Optimizers optim_;
  std::unique_ptr<DataLoader> train_, val_, test_;
  std::vector<std::shared_ptr<Callback>> callbacks_;
  std::shared_ptr<ModelCheckpoint> checkpoint_;

  // Position and history; what travels in checkpoints (TrainerState).
  int64_t epoch_ = 0, resume_epoch_ = 0, resume_batch_ = 0, steps_ = 0, epochs_done_ = 0, batches_ = 0, samples_ = 0;
  at::Tensor resume_rng_;  // this rank's generator state at the checkpoint (same world size only)
  std::string resumed_from_, newest_checkpoint_;
  int64_t last_saved_step_ = -1, stopped_at_batch_ = -1;
  bool stop_ = false;
  int preempted_by_ = 0;
  std::map<std::string, double> step_values_, last_, best_, extra_metrics_;
};

}  // namespace mpitrain::detail
