// mpitrain-leader: the MPI singleton of one spawn-mode job (DESIGN §1). Kept to MPI + libc on
// purpose: it starts in milliseconds, where a LibTorch-linked binary takes ~0.65 s to load.
// Usage: mpitrain-leader <worker executable> <num_workers> <driver channel>
// Spawns <num_workers> copies of <worker executable> with --mpitrain-worker=<channel> and waits
// until they disconnect, or ends them all when the driver (its parent) is gone. Exit codes: 0 done,
// 2 usage, 3 spawn failed, 5 the driver is gone.
#include <mpi.h>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "process_table.hpp"

namespace {
// The job must not outlive its driver: when the driver (this process's parent) is gone, end
// Open MPI's daemon (a child of this process, in a session of its own) and every worker in that
// session, then this process. Polled, so it also covers a driver killed by SIGKILL.
void watch_parent() {
  const pid_t parent = ::getppid(), self = ::getpid();
  std::thread([parent, self] {
    while (::getppid() == parent) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    for (const auto& p : mpitrain::detail::processes())
      if (p.ppid == self) {
        if (p.session == p.pid)
          for (pid_t member : mpitrain::detail::session_members(p.session)) ::kill(member, SIGKILL);
        ::kill(p.pid, SIGKILL);
      }
    std::fprintf(stderr, "mpitrain-leader: the driver is gone; ended its job\n");
    ::_exit(5);
  }).detach();
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 4 || std::atoi(argv[2]) <= 0) {
    std::fprintf(stderr, "usage: mpitrain-leader <worker executable> <num_workers> <driver channel>\n");
    return 2;
  }
  watch_parent();
  MPI_Init(&argc, &argv);
  MPI_Comm_set_errhandler(MPI_COMM_SELF, MPI_ERRORS_RETURN);
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  const int n = std::atoi(argv[2]);
  std::string arg = std::string("--mpitrain-worker=") + argv[3];
  char* wargv[] = {arg.data(), nullptr};
  std::vector<int> errcodes(size_t(n), 0);
  MPI_Comm inter = MPI_COMM_NULL;
  int rc = MPI_Comm_spawn(argv[1], wargv, n, MPI_INFO_NULL, 0, MPI_COMM_SELF, &inter, errcodes.data());
  if (rc != MPI_SUCCESS) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    std::fprintf(stderr, "mpitrain-leader: MPI_Comm_spawn of %d x %s failed: %.*s\n", n, argv[1], len, msg);
    MPI_Abort(MPI_COMM_WORLD, 3);
    return 3;
  }
  MPI_Comm_set_errhandler(inter, MPI_ERRORS_RETURN);
  // The workers talk to the driver directly; the leader only keeps the job alive until every
  // worker has disconnected. If one dies, the driver tears the job down.
  MPI_Comm_disconnect(&inter);
  MPI_Finalize();
  return 0;
}
