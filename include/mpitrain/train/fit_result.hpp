// What Trainer::fit / validate / test return: the user's metrics apart from the framework's own
// statistics, the checkpoints, and how the run ended (completed, preempted, failed).
#pragma once
#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

#include "mpitrain/errors.hpp"

namespace mpitrain {

enum class FitStatus {
  Completed,  ///< trained (or evaluated) to the end, or stopped early by a callback
  Preempted,  ///< SIGTERM/SIGUSR1 (SPMD): checkpointed and stopped; rerun with ckpt_path "auto"
  Failed,     ///< see FitResult::error
};
const char* fit_status_name(FitStatus s);

/// Framework statistics (never logged by the module).
struct FitStats {
  int64_t epochs = 0;         ///< completed epochs, over all attempts and resumes
  int64_t steps = 0;          ///< optimizer steps, over all attempts and resumes
  int64_t samples = 0;        ///< examples trained in this run, all ranks
  double wall_s = 0;          ///< time in the training loop
  double samples_per_s = 0;   ///< samples / wall_s
  std::map<std::string, double> strategy;  ///< the strategy's own (e.g. DDP buckets, reductions)
};

struct FitResult {
  FitStatus status = FitStatus::Completed;
  /// The last epoch's value of every logged metric, best_<name> for each (by the mode it was
  /// logged with), the test metrics after fit, and values callbacks report (early_stopping_best).
  std::map<std::string, double> metrics;
  FitStats stats;
  std::string checkpoint;       ///< the newest checkpoint (fit), or the one evaluated (validate/test)
  std::string best_checkpoint;  ///< by ModelCheckpoint's monitor ("" without one)
  int signal = 0;               ///< Preempted: the signal that stopped the run

  std::string error;            ///< Failed: "rank r: <message>"
  ErrorKind error_kind = ErrorKind::None;
  int failed_rank = -1;
  std::vector<std::string> failures;  ///< earlier failed attempts that were relaunched (FailureConfig)

  bool ok() const { return status != FitStatus::Failed; }
  /// The process exit code an app should return: 0, 2 (bad input), 1 (crash), 75 (preempted).
  int exit_code() const;
};

/// Exit code of a run that checkpointed and stopped on SIGTERM/SIGUSR1 (EX_TEMPFAIL):
/// slurm/train.sbatch requeues the job on it, and the rerun resumes from `latest`.
inline constexpr int kExitPreempted = 75;

/// How a worker's result travels to the driver (non-finite metrics survive as "nan"/"inf").
nlohmann::json to_json(const FitResult& r);
FitResult fit_result_from_json(const nlohmann::json& j);

}  // namespace mpitrain
