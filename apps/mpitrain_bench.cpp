// mpitrain-bench: benchmark programs that print CSV and ratios against baselines measured in
// the same run (DESIGN §4). `allreduce` runs under mpirun (SPMD); `spawn` runs alone (it is
// the driver and launches its own workers).
#include <boost/program_options/errors.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/bench_common.hpp"
#include "mpitrain/errors.hpp"
#include "mpitrain/launch/runtime.hpp"

namespace {
const char* kUsage =
    "usage: mpitrain-bench <benchmark> [options]\n"
    "benchmarks:\n"
    "  allreduce   allreduce, reduce-scatter, allgather sweep, mpitrain paths vs plain MPI (mpirun -n N mpitrain-bench ...)\n"
    "  spawn       launch -> all workers ready, 2 and 4 workers, vs torch.multiprocessing.spawn (run alone)\n"
    "  train       MLP training samples/s: 1 rank, 2 ranks with mpitrain DDP, PyTorch DDP (run alone)\n"
    "  seed        the seed example's ResNet-18 samples/s: 1 rank, 2 ranks mpitrain DDP, PyTorch DDP + torchvision (run alone)\n"
    "  engine      named tensors through the Horovod-style coordinator vs MPI_Allreduce; Horovod vs DDP MLP (mpirun -n 2 ...)\n"
    "  memory      per-rank memory and samples/s of DDP vs Sharded stage 1/2 (ZeRO), Adam, 1/2/4 ranks (run alone)\n"
    "  adam        one Adam step on ResNet-18's parameters: torch::optim::Adam vs mpitrain's fused one (run alone)\n"
    "  ckpt        checkpoint write (fsync) and read MB/s of a ~100 MB state vs torch::save and dd (run alone)\n"
    "'mpitrain-bench <benchmark> --help' explains its options and output columns.\n";
}

int main(int argc, char** argv) {
  mpitrain::Runtime rt(argc, argv);  // spawned workers (spawn benchmark) serve their task in here
  const bool spmd = rt.role() == mpitrain::Role::Spmd;
  const bool printer = rt.env().rank == 0;
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (args.empty() || args[0] == "--help" || args[0] == "-h") {
      if (printer) std::fputs(kUsage, args.empty() ? stderr : stdout);
      return args.empty() ? 2 : 0;
    }
    const std::vector<std::string> rest(args.begin() + 1, args.end());
    if (args[0] == "allreduce") return mpitrain::bench::run_allreduce(rest, spmd);
    if (args[0] == "spawn") return mpitrain::bench::run_spawn(rest, spmd);
    if (args[0] == "train") return mpitrain::bench::run_train(rest, spmd);
    if (args[0] == "seed") return mpitrain::bench::run_train(rest, spmd, true);
    if (args[0] == "engine") return mpitrain::bench::run_engine(rest, spmd);
    if (args[0] == "ckpt") return mpitrain::bench::run_ckpt(rest, spmd);
    if (args[0] == "adam") return mpitrain::bench::run_adam(rest, spmd);
    if (args[0] == "memory") return mpitrain::bench::run_memory(rest, spmd);
    throw mpitrain::bench::UsageError("unknown benchmark '" + args[0] + "'\n" + kUsage);
  } catch (const mpitrain::bench::UsageError& e) {
    if (printer) std::fprintf(stderr, "mpitrain-bench: %s\n", e.what());
    return 2;
  } catch (const boost::program_options::error& e) {
    if (printer) std::fprintf(stderr, "mpitrain-bench: %s (see --help)\n", e.what());
    return 2;
  } catch (const mpitrain::ConfigError& e) {  // a bad value an option named (a model, ...)
    if (printer) std::fprintf(stderr, "mpitrain-bench: %s\n", e.what());
    return 2;
  }
  // Other exceptions (CommError, ...) reach the Runtime's handler: every rank reports and exits non-zero.
}
