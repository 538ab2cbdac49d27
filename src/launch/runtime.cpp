#include "mpitrain/launch/runtime.hpp"

#include <mpi.h>
#include <unistd.h>

#include <csignal>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>

#include "startup_watchdog.hpp"
#include "worker.hpp"

namespace mpitrain {

namespace {
Runtime* g_current = nullptr;

// Removes argv[i] (argc/argv as main() got them).
void drop_arg(int& argc, char** argv, int i) {
  for (int j = i; j < argc; ++j) argv[j] = argv[j + 1];
  --argc;
}

// SPMD: an exception nobody caught (a CommError after a dead peer, a bad batch on one rank) must
// end every rank, not leave the others waiting. Print it with the rank, then abort the job.
[[noreturn]] void spmd_terminate() {
  int rank = -1, inited = 0;
  MPI_Initialized(&inited);
  if (inited) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  std::string what = "unknown exception";
  if (auto ep = std::current_exception()) {
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
  }
  std::fprintf(stderr, "mpitrain: rank %d: %s\n", rank, what.c_str());
  std::fflush(stderr);
  if (inited) MPI_Abort(MPI_COMM_WORLD, 1);
  std::_Exit(1);
}
// Test hook: MPITRAIN_TEST_STOP_BEFORE_MPI_INIT=RANK makes that SPMD rank SIGSTOP itself before
// MPI_Init (a rank stopped at start-up, for the watchdog's e2e test). No effect when unset.
void stop_before_mpi_init_for_tests() {
  const char* want = std::getenv("MPITRAIN_TEST_STOP_BEFORE_MPI_INIT");
  const char* rank = std::getenv("OMPI_COMM_WORLD_RANK");
  if (want && rank && std::strcmp(want, rank) == 0) ::raise(SIGSTOP);
}
}  // namespace

Runtime* Runtime::current() { return g_current; }

Runtime::Runtime(int& argc, char**& argv) {
  bool print_topology = std::getenv("MPITRAIN_PRINT_TOPOLOGY") && std::string(std::getenv("MPITRAIN_PRINT_TOPOLOGY")) == "1";
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--mpitrain-print-topology") == 0) {
      print_topology = true;
      drop_arg(argc, argv, i--);
    }
  env_.role = detect_role(argc, argv);
  if (env_.role == Role::Worker) {
    for (int i = 1; i < argc; ++i)
      if (std::strncmp(argv[i], "--mpitrain-worker=", 18) == 0) detail::serve_worker(argv[i] + 18);
    std::fprintf(stderr, "mpitrain: --mpitrain-worker needs =<channel>\n");
    std::exit(2);
  }
  if (env_.role == Role::Leader) {
    std::fprintf(stderr, "mpitrain: the leader role is served by the mpitrain-leader program\n");
    std::exit(2);
  }
  if (env_.role == Role::Spmd) {
    stop_before_mpi_init_for_tests();
    int inited = 0, provided = 0;
    MPI_Initialized(&inited);
    {
      // MPI_Init and the first collectives wait for every rank: a stopped one would hang us all.
      detail::StartupWatchdog watchdog(detail::startup_timeout_from(argc, argv),
                                       "MPI start-up (MPI_Init and the first barrier of all ranks)");
      if (!inited) {
        MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
        owns_mpi_ = true;
      }
      MPI_Barrier(MPI_COMM_WORLD);
    }
    std::set_terminate(spmd_terminate);
    env_ = detect_environment(MPI_COMM_WORLD, Role::Spmd);
    if (print_topology) {
      std::string table = topology_table(MPI_COMM_WORLD, env_);
      if (env_.rank == 0) std::cout << table << std::flush;
    }
  } else {
    char host[256] = {0};
    ::gethostname(host, sizeof host - 1);
    env_.hostname = host;
    env_.pid = int(::getpid());
    if (print_topology)
      std::cout << "rank\thost\tnode\tlocal\tdevice\tpid\n(driver)\t" << env_.hostname << "\t-\t-\t-\t" << env_.pid
                << "\n(workers print theirs when launched)\n" << std::flush;
  }
  print_topology_ = print_topology;
  g_current = this;
}

Runtime::~Runtime() {
  if (g_current == this) g_current = nullptr;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (owns_mpi_ && !finalized) MPI_Finalize();
}

}  // namespace mpitrain
