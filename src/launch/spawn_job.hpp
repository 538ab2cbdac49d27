// One spawn-mode job (DESIGN §1): the driver starts a leader, which spawns the workers; each
// worker connects back over its own socket, gets the task and streams messages until its result.
// spawn_job.cpp holds the poll loop and the messages; spawn_job_watch.cpp what watches for
// failures (signals to the driver, start-up, liveness, deaths) and ends the job's processes.
#pragma once
#include <nlohmann/json.hpp>

#include <chrono>
#include <string>
#include <vector>

#include "channel.hpp"
#include "driver_signals.hpp"
#include "leader_process.hpp"
#include "mpitrain/launch/launcher.hpp"

namespace mpitrain::detail {

/// Runs `entry` on a fresh job of scaling.num_workers workers, driven entirely on the calling
/// thread, and ends every process of the job before returning. A failure of the job is returned
/// in Result::error; throws only when the leader cannot be started (ConfigError when there is no
/// mpitrain-leader to start, Error when starting it fails). A second SIGTERM/SIGINT during the
/// job is re-raised once the job is gone.
Result run_spawn_job(const std::string& entry, const nlohmann::json& payload, const ScalingConfig& scaling,
                     const LaunchOptions& options);

class SpawnJob {
 public:
  using clock_type = std::chrono::steady_clock;
  SpawnJob(const std::string& entry, const nlohmann::json& payload, const ScalingConfig& sc, const LaunchOptions& o);
  ~SpawnJob() { teardown(); }
  Result run();
  int signal_to_reraise() const { return reraise_; }

 private:
  // spawn_job.cpp: the loop and the messages
  void step();
  void accept_workers();
  void greet(LineChannel c, const std::vector<nlohmann::json>& msgs);
  void read_workers();
  void handle(int r, const nlohmann::json& m);
  // spawn_job_watch.cpp: failures and the end of the job
  void fail(int rank, const std::string& msg, ErrorKind kind = ErrorKind::Died);
  void check_signals();
  nlohmann::json stop_message() const;
  void check_startup();
  void check_liveness();
  void worker_vanished(int r);
  bool reap_leader();
  void check_leader();
  void teardown();

  ScalingConfig scaling_;
  LaunchOptions opts_;
  DriverSignals signals_;
  bool stop_sent_ = false;
  nlohmann::json task_;
  Listener listener_;
  std::vector<LineChannel> pending_, channels_;
  std::vector<bool> got_result_;
  std::vector<clock_type::time_point> last_seen_;  // per rank: its last message
  Result result_;
  clock_type::time_point t0_;
  LeaderProcess leader_;
  pid_t orted_ = -1;
  std::string leader_stderr_;
  int ready_ = 0, results_ = 0;
  bool done_ = false, leader_exited_ = false, leader_checked_ = false, torn_down_ = false;
  int leader_status_ = 0;  // its wait status, once reaped
  pid_t leader_pid_ = -1;  // for messages, after it was reaped
  int reraise_ = 0;  // a second SIGTERM/SIGINT: re-raised by run_spawn_job once the job is gone
};

}  // namespace mpitrain::detail
