// FunctionTrainer: Ray Train's TorchTrainer for hand-written loops. A training function, registered
// by name (spawned workers are fresh processes of the same binary and find it by name, as modules),
// runs on every worker with its JSON train_loop_config:
//   void train_func(const nlohmann::json& config) {
//     auto ckpt = mpitrain::loop::get_checkpoint();      // after a relaunch: where to continue
//     ... prepare_model, prepare_data_loader, the loop ...
//     mpitrain::loop::report({{"loss", l}}, checkpoint);
//   }
//   MPITRAIN_REGISTER_TRAIN_LOOP("train_func", train_func);
//   auto result = FunctionTrainer("train_func", {{"epochs", 5}}, {.num_workers = 2}, run_config).fit();
// Spawned from a lone driver, or in place under mpirun/srun (SPMD), like Trainer::fit. In spawn
// mode a failed job (a worker died or threw) is relaunched up to FailureConfig::max_failures
// times; the new workers' get_checkpoint() returns the last checkpoint the failed job reported.
#pragma once
#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "mpitrain/errors.hpp"
#include "mpitrain/launch/launcher.hpp"
#include "mpitrain/train/loop/checkpoint.hpp"
#include "mpitrain/train/loop/checkpoint_config.hpp"
#include "mpitrain/train/trainer.hpp"

namespace mpitrain::loop {

using TrainLoop = std::function<void(const nlohmann::json& config)>;

/// Registers `fn` under `name`; ConfigError when the name is taken.
bool register_train_loop(const std::string& name, TrainLoop fn);
/// An empty function when unknown.
TrainLoop find_train_loop(const std::string& name);
std::vector<std::string> train_loop_names();

struct RunConfig {
  std::string name;                             ///< "": "<function>_<YYYY-MM-DD_HH-MM-SS>"
  std::string storage_path = "mpitrain_results";
  CheckpointConfig checkpoint_config;
  FailureConfig failure_config;
  LaunchMode mode = LaunchMode::Auto;
  double comm_timeout_s = 300;
  double liveness_timeout_s = 30;
  double startup_timeout_s = 120;
};

/// A checkpoint the run reported: where it is and what was reported with it.
struct ReportedCheckpoint {
  std::string path;
  int64_t index = -1;
  std::map<std::string, double> metrics;
  Checkpoint load() const { return Checkpoint::load(path); }
};

struct Result {
  std::map<std::string, double> metrics;       ///< the last report's (rank 0's)
  std::optional<ReportedCheckpoint> checkpoint;  ///< the latest reported checkpoint
  /// The checkpoints kept on disk, best first by the score attribute and order (newest first
  /// without an attribute); ties: newer first.
  std::vector<ReportedCheckpoint> best_checkpoints;
  std::string path;                              ///< the run directory
  std::string error;                             ///< "rank r: <message>"; empty on success
  ErrorKind error_kind = ErrorKind::None;
  int failed_rank = -1;
  std::vector<std::string> failures;             ///< earlier attempts that failed and were relaunched
  bool ok() const { return error.empty(); }
  int exit_code() const { return exit_code_for(error_kind); }  ///< 0, 2 (bad input), 1
};

class FunctionTrainer {
 public:
  /// ConfigError now for an unknown function, a bad checkpoint or scaling config.
  FunctionTrainer(std::string train_loop, nlohmann::json train_loop_config = nlohmann::json::object(),
                  ScalingConfig scaling = {}, RunConfig run = {}, std::string resume_from_checkpoint = "");
  /// Runs the function on the workers; a failure is returned in Result::error (and its kind).
  /// ConfigError for bad input found before anything starts: the run directory exists with
  /// checkpoints of an earlier run (choose another name, or resume_from_checkpoint), or cannot
  /// be created.
  Result fit() const;

 private:
  std::string loop_;
  nlohmann::json config_;
  ScalingConfig scaling_;
  RunConfig run_;
  std::string resume_;
};

}  // namespace mpitrain::loop

#define MPITRAIN_LOOP_CONCAT_INNER(a, b) a##b
#define MPITRAIN_LOOP_CONCAT(a, b) MPITRAIN_LOOP_CONCAT_INNER(a, b)
/// MPITRAIN_REGISTER_TRAIN_LOOP("name", fn) at namespace scope.
#define MPITRAIN_REGISTER_TRAIN_LOOP(name, fn)                                         \
  static const bool MPITRAIN_LOOP_CONCAT(mpitrain_loop_registered_, __COUNTER__) = \
      ::mpitrain::loop::register_train_loop(name, fn)
