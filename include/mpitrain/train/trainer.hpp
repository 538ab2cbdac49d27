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
#include "mpitrain/train/model_checkpoint.hpp"
#include "mpitrain/train/module.hpp"

namespace mpitrain {

struct EarlyStoppingOptions {
  std::string monitor;  ///< empty: off. A metric name logged on epoch level, e.g. "val_loss"
  std::string mode = "min";
  int patience = 3;
  double min_delta = 0.0;
};

/// Spawn mode: a failed job (a worker died or threw) is relaunched from the latest checkpoint up
/// to max_failures times; Result::failures lists each failure. Bad input is never retried.
struct FailureConfig {
  int max_failures = 0;
};

/// Exit code of an SPMD run that checkpointed and stopped on SIGTERM/SIGUSR1 (EX_TEMPFAIL):
/// slurm/train.sbatch requeues the job on it, and the rerun resumes from `latest`.
inline constexpr int kExitPreempted = 75;

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
  ModelCheckpointOptions checkpoint;    ///< ModelCheckpoint callback (on by default: every epoch)
  FailureConfig failure;
  std::string strategy = "ddp";
  DDPOptions ddp;
  ScalingConfig scaling;                ///< spawn mode: workers and their threads
  LaunchMode mode = LaunchMode::Auto;
  bool throw_on_error = false;          ///< fit() throws WorkerFailure instead of returning Result::error

  /// Where ModelCheckpoint writes: checkpoint.dirpath, or <default_root_dir>/checkpoints.
  std::string checkpoint_dir() const;

  nlohmann::json to_json() const;
  static TrainerOptions from_json(const nlohmann::json& j);  ///< ConfigError on a bad value
  void validate() const;                                    ///< ConfigError naming the option
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
  /// Trains a registered module (MPITRAIN_REGISTER_MODULE) built from `config`. Result::metrics
  /// holds the last epoch's aggregated metrics, best_<name> for each (max for names with "acc",
  /// min otherwise), epochs, steps, wall_s, samples_per_s; Result::checkpoint the newest checkpoint.
  /// ckpt_path: "" (start fresh), "latest" (resume from the checkpoint directory's `latest`; an
  /// error if there is none), "auto" (resume if there is one), or the path of a checkpoint.
  Result fit(const std::string& module_name, const Config& config, const std::string& ckpt_path = "") const;
  template <class M>
  Result fit(const Config& config, const std::string& ckpt_path = "") const {
    return fit(registered_module_name(std::type_index(typeid(M))), config, ckpt_path);
  }
  /// One pass over the validation (test) set with the weights of `ckpt_path` ("latest", a path,
  /// or "" for the freshly initialised module); metrics as in fit.
  Result validate(const std::string& module_name, const Config& config, const std::string& ckpt_path = "latest") const;
  Result test(const std::string& module_name, const Config& config, const std::string& ckpt_path = "latest") const;
  const TrainerOptions& options() const { return opts_; }
  std::string checkpoint_dir() const { return opts_.checkpoint_dir(); }

  /// Worker side: trains `module` in this process (one rank of the job). Public for tests.
  static nlohmann::json run(Module& module, const TrainerOptions& options, TaskContext& ctx, const FitInfo& info = {});
  /// Worker side of validate()/test(): stage "validate" or "test".
  static nlohmann::json evaluate(Module& module, const TrainerOptions& options, TaskContext& ctx, const std::string& stage,
                                 const std::string& ckpt_path);

 private:
  Result launch_stage(const std::string& stage, const std::string& module_name, const Config& config,
                      const std::string& ckpt_path) const;
  TrainerOptions opts_;
};

/// Resolves fit()'s ckpt_path against a checkpoint directory: "" when there is nothing to load.
/// CheckpointError for "latest" without a `latest` pointer, or a pointer/path to a missing file.
std::string resolve_checkpoint_path(const std::string& ckpt_path, const std::string& dir);

}  // namespace mpitrain
