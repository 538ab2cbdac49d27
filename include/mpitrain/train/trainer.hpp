// Trainer: Lightning's option names where they exist (DESIGN §1). fit() runs the Module on a
// group of workers: spawned from a lone driver (ScalingConfig), or in place under mpirun/srun.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <typeindex>
#include <vector>

#include "mpitrain/launch/launcher.hpp"
#include "mpitrain/launch/task_context.hpp"
#include "mpitrain/strategy/ddp.hpp"
#include "mpitrain/train/module.hpp"

namespace mpitrain {

struct EarlyStoppingOptions {
  std::string monitor;  ///< empty: off. A metric name logged on epoch level, e.g. "val_loss"
  std::string mode = "min";
  int patience = 3;
  double min_delta = 0.0;
};

struct TrainerOptions {
  int64_t max_epochs = 1;
  int64_t max_steps = -1;               ///< optimizer steps; -1: no limit
  int64_t limit_train_batches = -1;     ///< batches per epoch; -1: all
  int64_t limit_val_batches = -1;
  int64_t check_val_every_n_epoch = 1;
  int64_t accumulate_grad_batches = 1;
  double gradient_clip_val = 0;         ///< clip the global gradient norm; 0: off
  std::string precision = "32";         ///< "32" or "bf16-mixed" (CPU autocast)
  uint64_t seed = 0;
  bool deterministic = false;           ///< LibTorch deterministic algorithms
  std::string default_root_dir = "mpitrain_logs";
  bool enable_progress_bar = true;
  int64_t log_every_n_steps = 50;
  bool run_test = true;                 ///< after fit, evaluate the test set if the module has one
  std::vector<std::string> loggers = {"csv"};  ///< "csv" (metrics.csv), "tensorboard" (tensorboard/events.*)
  EarlyStoppingOptions early_stopping;
  std::string strategy = "ddp";
  DDPOptions ddp;
  ScalingConfig scaling;                ///< spawn mode: workers and their threads
  LaunchMode mode = LaunchMode::Auto;
  bool throw_on_error = false;          ///< fit() throws WorkerFailure instead of returning Result::error

  nlohmann::json to_json() const;
  static TrainerOptions from_json(const nlohmann::json& j);  ///< ConfigError on a bad value
  void validate() const;                                    ///< ConfigError naming the option
};

class Trainer {
 public:
  explicit Trainer(TrainerOptions options = {});
  /// Trains a registered module (MPITRAIN_REGISTER_MODULE) built from `config`. Result::metrics
  /// holds the last epoch's aggregated metrics plus epochs, steps, wall_s, samples_per_s.
  Result fit(const std::string& module_name, const Config& config) const;
  template <class M>
  Result fit(const Config& config) const {
    return fit(registered_module_name(std::type_index(typeid(M))), config);
  }
  const TrainerOptions& options() const { return opts_; }

  /// Worker side: trains `module` in this process (one rank of the job). Public for tests.
  static nlohmann::json run(Module& module, const TrainerOptions& options, TaskContext& ctx);

 private:
  TrainerOptions opts_;
};

}  // namespace mpitrain
