// The /proc process table, for tearing down a job's processes (Open MPI's daemon and the workers
// it started in its own session) and for describing how a process ended.
#pragma once
#include <sys/types.h>

#include <string>
#include <vector>

namespace mpitrain::detail {

/// The fields of /proc/<pid>/stat we need.
struct ProcStat {
  pid_t pid, ppid, session;
  char state;  // 'R', 'S', 'D', 'T' (stopped), 't' (traced), ...
};

/// Every live (non-zombie) process.
std::vector<ProcStat> processes();

/// Pids of the processes in session `sid` (orted starts one with setsid; the workers live there).
std::vector<pid_t> session_members(pid_t sid);

/// A live child of `parent`, or -1.
pid_t child_of(pid_t parent);

/// "signal 9 (Killed)".
std::string signal_text(int sig);

}  // namespace mpitrain::detail
