// What watches a spawn-mode job for its end: signals to the driver, a start-up that does not
// finish, workers that stop beating, die or lose their leader; and the teardown that ends every
// process of the job, whatever happened (see spawn_job.hpp).
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <iostream>

#include "mpitrain/errors.hpp"
#include "process_table.hpp"
#include "protocol.hpp"
#include "spawn_job.hpp"

namespace mpitrain::detail {

void SpawnJob::fail(int rank, const std::string& msg, ErrorKind kind) {
  if (!result_.error.empty()) return;  // the first failure is the cause; the rest are fallout
  result_.failed_rank = rank;
  result_.error_kind = kind;
  result_.error = rank >= 0 ? "rank " + std::to_string(rank) + ": " + msg : msg;
  done_ = true;
}

// SIGTERM/SIGINT to the driver: the first becomes a stop message to every worker (and to those
// still connecting); a second ends the job at once and is re-raised once it is torn down.
void SpawnJob::check_signals() {
  const int n = signals_.count();
  if (n == 0) return;
  const std::string what = signal_text(signals_.last());
  if (n >= 2) {
    reraise_ = signals_.last();
    return fail(-1, "stopped at once by a second " + what, ErrorKind::Died);
  }
  if (stop_sent_) return;
  stop_sent_ = true;
  std::cerr << "mpitrain: " << what << ": the workers checkpoint and stop at the next step (send it again to stop at once)"
            << std::endl;
  for (auto& c : channels_)
    if (c.open()) c.send(stop_message());
}

nlohmann::json SpawnJob::stop_message() const {
  return make_message(MessageType::Stop, -1, {{"signal", signals_.last()}});
}

// Start-up has its own watchdog: name the ranks that never connected (stuck before or in MPI_Init,
// or stopped), not just how many are missing.
void SpawnJob::check_startup() {
  if (ready_ == scaling_.num_workers || clock_type::now() - t0_ <= opts_.startup_timeout) return;
  std::string missing;
  for (int r = 0; r < scaling_.num_workers; ++r)
    if (!channels_[size_t(r)].open() && !got_result_[size_t(r)]) missing += (missing.empty() ? "" : ", ") + std::to_string(r);
  fail(-1, "only " + std::to_string(ready_) + " of " + std::to_string(scaling_.num_workers) + " workers started within " +
               std::to_string(opts_.startup_timeout.count()) + " s (rank(s) " + (missing.empty() ? "?" : missing) +
               " never connected: stuck in MPI_Init, stopped, or unable to reach the driver)" +
               launcher_tail(leader_stderr_));
}

// Every worker's link thread beats once a second whatever its training thread does, so silence
// means the process is stopped (SIGSTOP) or wedged as a whole; a slow step keeps beating.
void SpawnJob::check_liveness() {
  if (opts_.liveness_timeout.count() <= 0) return;
  const auto now = clock_type::now();
  for (int r = 0; r < scaling_.num_workers && !done_; ++r) {
    if (!channels_[size_t(r)].open() || got_result_[size_t(r)] || now - last_seen_[size_t(r)] <= opts_.liveness_timeout)
      continue;
    fail(r, "worker process (pid " + std::to_string(result_.worker_pids[size_t(r)]) + ") has sent nothing for " +
                std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - last_seen_[size_t(r)]).count()) +
                " s, not even a heartbeat: it is stopped or hung (liveness timeout " +
                std::to_string(std::chrono::duration_cast<std::chrono::seconds>(opts_.liveness_timeout).count()) + " s)");
  }
}

// A worker's socket closed before its result: it died. Give the launcher a moment to say how
// (Open MPI reports the signal or exit code on the leader's stderr), then name rank and cause.
void SpawnJob::worker_vanished(int r) {
  const auto start = clock_type::now();
  const auto until = start + opts_.failure_report_wait;
  // Open MPI prints its report in two parts ("... the job has been aborted", then the process and
  // its exit code); on a loaded machine the second can come seconds later. Once the first part is
  // there, wait up to 4x as long for the second, unless the leader has exited (nothing more comes).
  const auto report_until = start + 4 * opts_.failure_report_wait;
  const std::string who = "worker process (pid " + std::to_string(result_.worker_pids[size_t(r)]) + ")";
  for (bool drained = false;;) {
    read_leader_stderr(leader_.stderr_fd, leader_stderr_);
    if (reap_leader() && WIFSIGNALED(leader_status_)) {  // a killed leader took its workers with it
      check_leader();
      if (done_) return;
    }
    const std::string how = worker_exit_report(leader_stderr_);
    if (!how.empty()) return fail(r, who + " " + how);
    const auto now = clock_type::now();
    const bool reporting = leader_stderr_.find("has been aborted") != std::string::npos && !drained;
    if (now >= report_until || (now >= until && !reporting)) break;
    drained = leader_exited_;  // one more read after the leader exited, then no more waiting
    ::usleep(20000);
  }
  fail(r, who + " ended before finishing its task (no exit status reported)" + launcher_tail(leader_stderr_));
}

// True once the leader has exited (then its wait status is in leader_status_).
bool SpawnJob::reap_leader() {
  if (leader_exited_) return true;
  if (leader_.pid <= 0) return false;
  if (orted_ <= 0) orted_ = child_of(leader_.pid);  // remember Open MPI's daemon: it owns the workers
  if (::waitpid(leader_.pid, &leader_status_, WNOHANG) != leader_.pid) return false;
  leader_exited_ = true;
  leader_pid_ = leader_.pid;
  leader_.pid = -1;
  return true;
}

void SpawnJob::check_leader() {
  if (leader_checked_ || !reap_leader()) return;
  leader_checked_ = true;
  const int status = leader_status_;
  const bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  const std::string tail = " before the workers finished" + launcher_tail(leader_stderr_);
  if (WIFSIGNALED(status) && results_ < scaling_.num_workers)  // nothing of the job kills its leader
    return fail(-1, "the job's leader (mpitrain-leader, pid " + std::to_string(leader_pid_) + ") was killed by " +
                        signal_text(WTERMSIG(status)) + tail);
  if (!clean && results_ < scaling_.num_workers) {
    // Let the workers' own reports (error messages, vanished sockets) arrive first: they name the rank.
    const auto until = clock_type::now() + opts_.failure_report_wait;
    while (!done_ && clock_type::now() < until) {
      read_workers();
      ::usleep(20000);
    }
    fail(-1, "the job's leader exited with code " + std::to_string(WEXITSTATUS(status)) + tail);
  }
}

// Every process of the job ends here, whatever happened: workers, Open MPI's daemon, leader.
void SpawnJob::teardown() {
  if (torn_down_) return;
  torn_down_ = true;
  for (auto& c : channels_) c.close();
  pending_.clear();
  end_job_processes(leader_, orted_, result_.worker_pids, !result_.error.empty() || !leader_exited_);
  read_leader_stderr(leader_.stderr_fd, leader_stderr_);
  if (leader_.stderr_fd >= 0) ::close(leader_.stderr_fd);
  leader_.stderr_fd = -1;
  if (std::getenv("MPITRAIN_DEBUG_LAUNCH") && !leader_stderr_.empty())
    std::cerr << "mpitrain: leader stderr:\n" << leader_stderr_ << std::endl;
}

Result run_spawn_job(const std::string& entry, const nlohmann::json& payload, const ScalingConfig& scaling,
                     const LaunchOptions& options) {
  Result r;
  int reraise = 0;
  {
    SpawnJob job(entry, payload, scaling, options);
    r = job.run();
    reraise = job.signal_to_reraise();
  }  // handlers restored
  if (reraise) ::raise(reraise);  // the default action (or the caller's handler) of a second signal
  return r;
}

}  // namespace mpitrain::detail
