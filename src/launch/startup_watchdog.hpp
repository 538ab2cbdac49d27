// SPMD start-up watchdog. MPI_Init and the first collective wait for every rank of the job, so a
// rank that is stopped (SIGSTOP) or never gets there holds up all the others, forever: there is no
// Communicator yet to time out. The watchdog is a thread armed around that window; if it expires
// it prints one line naming the job's other ranks on this node and their state, and exits the
// process non-zero, which makes mpirun / srun end the job.
#pragma once
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace mpitrain::detail {

/// --startup-timeout S (or =S) in argv, else MPITRAIN_STARTUP_TIMEOUT, else 120 s; 0: off.
std::chrono::milliseconds startup_timeout_from(int argc, char** argv);

/// "rank 1 (pid 4242) stopped (SIGSTOP), rank 2 (pid 4243) running": the other processes of this
/// job on this node (same parent and PMIX_NAMESPACE as this one), or "" when none is found.
std::string node_peers_report();

class StartupWatchdog {
 public:
  /// `what` names the window ("MPI start-up"); 0 ms: disarmed from the start.
  StartupWatchdog(std::chrono::milliseconds limit, std::string what);
  ~StartupWatchdog();  ///< disarms it
  StartupWatchdog(const StartupWatchdog&) = delete;
  StartupWatchdog& operator=(const StartupWatchdog&) = delete;

 private:
  [[noreturn]] void expire() const;
  std::chrono::milliseconds limit_;
  std::string what_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace mpitrain::detail
