// Trainer: Lightning's option names where they exist (DESIGN §1). fit() runs the Module on a
// group of workers: spawned from a lone driver (ScalingConfig), or in place under mpirun/srun.
// The strategy and the callbacks are plug-ins named in the options (strategy/registry.hpp,
// train/callback.hpp), so spawned workers rebuild them by name; the Trainer knows none of them.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <typeindex>
#include <vector>

#include "mpitrain/launch/launcher.hpp"
#include "mpitrain/launch/task_context.hpp"
#include "mpitrain/strategy/registry.hpp"
#include "mpitrain/train/callback.hpp"
#include "mpitrain/train/callbacks/early_stopping.hpp"
#include "mpitrain/train/callbacks/model_checkpoint.hpp"
#include "mpitrain/train/fit_result.hpp"
#include "mpitrain/train/module.hpp"

namespace mpitrain {

/// Spawn mode: a failed job (a worker died or threw) is relaunched from the latest checkpoint up
/// to max_failures times; FitResult::failures lists each failure. Bad input is never retried.
struct FailureConfig {
  int max_failures = 0;
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
  /// "contiguous" or "channels_last": 4-D parameters, buffers and input batches NHWC (train/placement.hpp)
  std::string memory_format = "contiguous";
  uint64_t seed = 0;
  bool deterministic = false;           ///< LibTorch deterministic algorithms
  std::string default_root_dir = "mpitrain_logs";
  bool enable_progress_bar = true;
  int64_t log_every_n_steps = 50;
  bool run_test = true;                 ///< after fit, evaluate the test set if the module has one
  /// A NaN or infinite training loss on any rank stops fit on every rank at that step (an Error:
  /// "train_loss became NaN at step S (rank R)"); false: train on (one tiny allreduce per batch less).
  bool check_finite_loss = true;
  std::vector<std::string> loggers = {"csv"};  ///< "csv" (metrics.csv), "tensorboard" (tensorboard/events.*)
  EarlyStoppingOptions early_stopping;  ///< the EarlyStopping callback, when `monitor` is set
  ModelCheckpointOptions checkpoint;    ///< the ModelCheckpoint callback (on by default: every epoch)
  std::vector<CallbackSpec> callbacks;  ///< user callbacks by registered name, run after the built-ins
  FailureConfig failure;
  StrategySpec strategy;                ///< {"ddp", DDPOptions as JSON} by default
  ScalingConfig scaling;                ///< spawn mode: workers, their threads, use_gpu
  double comm_timeout_s = 300;          ///< deadline of every collective (a dead or diverged peer)
  double liveness_timeout_s = 30;       ///< a rank silent this long is stopped or hung (spawn and SPMD); 0: off, else >= 1
  double startup_timeout_s = 120;       ///< spawn mode: launch -> every worker connected
  LaunchMode mode = LaunchMode::Auto;
  bool throw_on_error = false;          ///< fit() throws WorkerFailure instead of returning an error

  /// Where ModelCheckpoint writes: checkpoint.dirpath, or <default_root_dir>/checkpoints.
  std::string checkpoint_dir() const;

  nlohmann::json to_json() const;
  /// Missing keys keep their defaults; an unknown key or a value of the wrong type is a
  /// ConfigError naming it, and so is anything validate() refuses.
  static TrainerOptions from_json(const nlohmann::json& j);
  void validate() const;  ///< ConfigError naming the option (also unknown strategy / callback names)
};

/// What a fit job knows besides the options: for checkpoint metadata and resume.
struct FitInfo {
  std::string module_name;
  Config config = Config::object();
  std::string ckpt_path;  ///< as Trainer::fit's
};

class Trainer {
 public:
  explicit Trainer(TrainerOptions options = {});
  /// Trains a registered module (MPITRAIN_REGISTER_MODULE) built from `config`; see FitResult.
  /// ckpt_path: "" (start fresh), "latest" (resume from the checkpoint directory's `latest`; an
  /// error if there is none), "auto" (resume if there is one), or the path of a checkpoint.
  FitResult fit(const std::string& module_name, const Config& config, const std::string& ckpt_path = "") const;
  template <class M>
  FitResult fit(const Config& config, const std::string& ckpt_path = "") const {
    return fit(registered_module_name(std::type_index(typeid(M))), config, ckpt_path);
  }
  /// One pass over the validation (test) set with the weights of `ckpt_path` ("latest", a path,
  /// or "" for the freshly initialised module); metrics as in fit, checkpoint = the one evaluated.
  FitResult validate(const std::string& module_name, const Config& config, const std::string& ckpt_path = "latest") const;
  FitResult test(const std::string& module_name, const Config& config, const std::string& ckpt_path = "latest") const;
  const TrainerOptions& options() const { return opts_; }
  std::string checkpoint_dir() const { return opts_.checkpoint_dir(); }

  /// Worker side: trains `module` in this process (one rank of the job). Public for tests.
  static FitResult run(Module& module, const TrainerOptions& options, TaskContext& ctx, const FitInfo& info = {});
  /// Worker side of validate()/test(): stage "validate" or "test".
  static FitResult evaluate(Module& module, const TrainerOptions& options, TaskContext& ctx, const std::string& stage,
                            const std::string& ckpt_path);

 private:
  FitResult launch_stage(const std::string& stage, const std::string& module_name, const Config& config,
                         const std::string& ckpt_path) const;
  TrainerOptions opts_;
};

/// Resolves fit()'s ckpt_path against a checkpoint directory: "" when there is nothing to load.
/// CheckpointError for "latest" without a `latest` pointer, or a pointer/path to a missing file.
std::string resolve_checkpoint_path(const std::string& ckpt_path, const std::string& dir);

// JSON forms of the option structs: each listed once, here (DESIGN §4).
void to_json(nlohmann::json& j, const LaunchMode& m);    ///< "auto", "spawn", "spmd"
void from_json(const nlohmann::json& j, LaunchMode& m);  ///< ConfigError for any other value
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ScalingConfig, num_workers, cpus_per_worker, use_gpu, oversubscribe)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(FailureConfig, max_failures)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(StrategySpec, name, options)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(CallbackSpec, name, options)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TrainerOptions, max_epochs, max_steps, limit_train_batches,
                                                limit_val_batches, check_val_every_n_epoch, accumulate_grad_batches,
                                                gradient_clip_val, precision, memory_format, seed, deterministic, default_root_dir,
                                                enable_progress_bar, log_every_n_steps, run_test, check_finite_loss, loggers,
                                                early_stopping, checkpoint, callbacks, failure, strategy, scaling,
                                                comm_timeout_s, liveness_timeout_s, startup_timeout_s, mode,
                                                throw_on_error)

}  // namespace mpitrain
