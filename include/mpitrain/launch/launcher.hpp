// launch(): run a registered entry point on a group of workers and collect its Result.
// From a driver (a lone process), every call starts a fresh MPI job: a small leader process
// (an MPI singleton) MPI_Comm_spawn's `num_workers` copies of this binary; each worker connects
// back to the driver over its own Unix socket, gets the task and streams typed messages (hello,
// heartbeat, progress, metric, log, result, error: MessageType in task_context.hpp). The driver
// never initialises MPI, so no worker failure can take it down, and it can run several launches
// at once from different threads.
// Under mpirun/srun (SPMD) the entry point runs in place on the launcher's world.
#pragma once
#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "mpitrain/errors.hpp"

namespace mpitrain {

struct ScalingConfig {
  int num_workers = 2;
  int cpus_per_worker = 1;  ///< LibTorch intra-op threads of each worker
  /// One CUDA device per worker and the NCCL backend for device buffers (make_communicator.hpp);
  /// a ConfigError on every rank where the build has no NCCL or a rank sees no device.
  bool use_gpu = false;
  /// Trainer (spawn mode): allow num_workers x cpus_per_worker beyond this node's CPUs (slow, and
  /// enough workers exhaust memory); refused with a ConfigError otherwise.
  bool oversubscribe = false;
};

enum class LaunchMode {
  Auto,   ///< SPMD under mpirun/srun, spawn from a lone process
  Spawn,  ///< require spawn (an error under mpirun/srun)
  Spmd,   ///< require a launcher's world (an error in a lone process)
};

struct LaunchOptions {
  LaunchMode mode = LaunchMode::Auto;
  std::chrono::seconds startup_timeout{120};           ///< launch -> every worker said hello
  std::chrono::milliseconds comm_timeout{300000};      ///< deadline of the workers' collectives
  /// A rank that shows no sign of life for this long is stopped or hung, not slow: the job fails
  /// naming it. Spawn mode: the driver watches every worker's heartbeat (sent once a second by a
  /// thread of its own, so a slow step keeps beating). SPMD: each rank's Communicator watches the
  /// heartbeats of the ranks on its node (CommOptions::liveness_timeout). 0: off.
  std::chrono::milliseconds liveness_timeout{30000};
  std::chrono::milliseconds failure_report_wait{1500}; ///< after a worker vanished: wait this long for the
                                                       ///< launcher's account of why (signal, exit code)
  /// Throw WorkerFailure instead of returning a Result whose error is set.
  bool throw_on_error = false;
  /// Every message from the workers, on the thread that called launch(). Default: log lines are
  /// printed to stderr as "[rank r] ...".
  std::function<void(const nlohmann::json&)> on_message;
};

/// What a launch returned. Launch knows nothing of training: an entry point that wants to pass
/// more (a checkpoint path, statistics) puts it in its value.
struct Result {
  nlohmann::json value;                  ///< what rank 0's entry point returned
  std::map<std::string, double> metrics; ///< last reported value per name
  std::string error;                     ///< "rank r: <message>"; empty on success
  /// The family of the failure (errors.hpp): the exception type the worker threw (Config,
  /// Argument, Checkpoint, Comm, Error, Exception), Died for a worker that was killed, exited or
  /// lost contact, Error for a protocol error; None on success. exit_code_for(error_kind) is the
  /// exit code an app should end with.
  ErrorKind error_kind = ErrorKind::None;
  int failed_rank = -1;
  std::vector<double> wall_seconds;      ///< per rank: time in the entry point
  std::vector<int> worker_pids;          ///< per rank (spawn mode)
  double ready_seconds = 0;              ///< launch -> every worker ready (spawn mode)
  double total_seconds = 0;
  bool ok() const { return error.empty(); }
};

/// Runs `entry` on the workers. Bad input (unknown entry, num_workers <= 0, spawn requested
/// where it cannot work) throws ConfigError before anything starts; a failure of the job is
/// returned in Result::error and Result::error_kind (or thrown as WorkerFailure carrying the
/// rank and kind, with throw_on_error). Thread-safe in a driver. In SPMD an exception of the entry
/// point propagates from launch() on the rank that threw it.
Result launch(const std::string& entry, const nlohmann::json& payload, const ScalingConfig& scaling = {},
              const LaunchOptions& options = {});

}  // namespace mpitrain
