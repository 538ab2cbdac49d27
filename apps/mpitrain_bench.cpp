// mpitrain-bench: benchmark programs that print CSV and ratios against baselines measured in
// the same run. Subcommands: allreduce (more arrive with the trainer and checkpoint layers).
#include <mpi.h>

#include <boost/program_options/errors.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/bench_common.hpp"
#include "mpitrain/errors.hpp"

namespace {
const char* kUsage =
    "usage: mpitrain-bench <benchmark> [options]      (mpirun -n N mpitrain-bench ... for several ranks)\n"
    "benchmarks:\n"
    "  allreduce   allreduce latency/bandwidth sweep: mpitrain paths vs MPI_Allreduce\n"
    "'mpitrain-bench <benchmark> --help' explains its options and output columns.\n";
}

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  int code = 0;
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (args.empty() || args[0] == "--help" || args[0] == "-h") {
      if (rank == 0) std::fputs(kUsage, args.empty() ? stderr : stdout);
      code = args.empty() ? 2 : 0;
    } else if (args[0] == "allreduce") {
      code = mpitrain::bench::run_allreduce({args.begin() + 1, args.end()});
    } else {
      throw mpitrain::bench::UsageError("unknown benchmark '" + args[0] + "'\n" + kUsage);
    }
  } catch (const mpitrain::bench::UsageError& e) {
    if (rank == 0) std::fprintf(stderr, "mpitrain-bench: %s\n", e.what());
    code = 2;
  } catch (const boost::program_options::error& e) {
    if (rank == 0) std::fprintf(stderr, "mpitrain-bench: %s (see --help)\n", e.what());
    code = 2;
  } catch (const mpitrain::Error& e) {
    // Every rank reports: a collective failure may be visible on some ranks only.
    std::fprintf(stderr, "mpitrain-bench: rank %d: %s\n", rank, e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);  // peers may be stuck in a collective: take the job down
  }
  MPI_Finalize();
  return code;
}
