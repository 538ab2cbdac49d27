// mpitrain-leader, the MPI singleton of one spawn-mode job (DESIGN §1): starting it, and reading
// what Open MPI says on its stderr about workers that died.
#pragma once
#include <sys/types.h>

#include <string>
#include <vector>

namespace mpitrain::detail {

/// mpitrain-leader next to libmpitrain_launch (build tree) or in libexec/mpitrain (install
/// tree); $MPITRAIN_LEADER overrides. Throws ConfigError when there is none.
std::string leader_path();

struct LeaderProcess {
  pid_t pid = -1;      ///< leads its own process group (kill(-pid) ends the group)
  int stderr_fd = -1;  ///< non-blocking read end of the leader's stderr (Open MPI's reports)
};

/// Starts the leader of a job of `num_workers` copies of this executable, each connecting back
/// to the driver's listener `channel`. Throws Error when it cannot be started.
LeaderProcess start_leader(int num_workers, const std::string& channel);

/// Ends the job's processes and reaps the leader: with `kill`, SIGKILLs the workers, Open MPI's
/// daemon `orted` with its session, and the leader's process group; then waits for the leader
/// and (up to 5 s) for the daemon's session to empty, killing what is left. Sets leader.pid = -1.
void end_job_processes(LeaderProcess& leader, pid_t orted, const std::vector<int>& worker_pids, bool kill);

/// Appends what the leader wrote to its stderr since the last call, without blocking.
void read_leader_stderr(int fd, std::string& text);

/// "; launcher said: <the last 600 characters of text>", or "" when it said nothing.
std::string launcher_tail(const std::string& text);

/// How Open MPI's report in the leader's stderr says a worker ended ("was killed by signal 9
/// (Killed)", "exited with code 7 before finishing its task"); "" while it has not said.
std::string worker_exit_report(const std::string& text);

}  // namespace mpitrain::detail
