// mpitrain-bench spawn: time from a fit()-style launch to every worker ready (an initialised
// Communicator, running the entry point), for 2 and 4 workers; 20 launches in a row; and
// PyTorch's torch.multiprocessing.spawn to an initialised gloo group, measured in the same run.
#include <sys/wait.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "bench_common.hpp"
#include "mpitrain/launch/launcher.hpp"
#include "mpitrain/launch/registry.hpp"

namespace po = boost::program_options;

namespace mpitrain::bench {
namespace {

nlohmann::json ready_entry(TaskContext& ctx, const nlohmann::json&) {
  ctx.report_progress({{"ready", true}});
  return {};
}
MPITRAIN_REGISTER_ENTRY_POINT("mpitrain-bench.ready", ready_entry);

const char* kColumns = R"(Output (CSV; '#' lines are comments):
  case         mpitrain-N: mpitrain launch() of N workers from this (driver) process
               torch-mp-N: /usr/bin/python3 torch.multiprocessing.spawn of N workers, each with an initialised
                           gloo process group (interpreter start included, as worker start is for mpitrain)
  runs         number of launches measured
  median_s     median seconds from the call to every worker ready (mpitrain: every worker reported from
               inside the entry point, i.e. after MPI_Init and the Communicator's setup)
  min_s,max_s  fastest and slowest run
  total_s      median seconds for the whole launch, until every process of the job has exited
  vs_torch     torch-mp-N median / this median (>1: faster than PyTorch))";

using clock_type = std::chrono::steady_clock;

struct Timing {
  std::vector<double> ready, total;
};

Timing time_mpitrain(int n, int runs) {
  Timing t;
  for (int i = 0; i < runs; ++i) {
    int ready = 0;
    double ready_s = 0;
    const auto t0 = clock_type::now();
    LaunchOptions o;
    o.on_message = [&](const nlohmann::json& m) {
      if (m.value("type", "") == "progress" && ++ready == n)
        ready_s = std::chrono::duration<double>(clock_type::now() - t0).count();
    };
    Result r = launch("mpitrain-bench.ready", {}, {n, 1, false}, o);
    if (!r.ok()) throw Error("launch failed: " + r.error);
    t.ready.push_back(ready_s);
    t.total.push_back(r.total_seconds);
  }
  return t;
}

// Runs the Python baseline; returns seconds from starting the interpreter to all workers ready.
double time_torch(int n, const std::string& script, int port) {
  const double start = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const double ready_at = run_and_read("/usr/bin/python3 " + script + " " + std::to_string(n) + " " + std::to_string(port), "ready_at");
  return ready_at - start;
}

void print_row(const std::string& name, const std::vector<double>& ready, const std::vector<double>& total,
               double torch_median) {
  const double med = median(ready);
  std::printf("%s,%zu,%.3f,%.3f,%.3f,%s,%s\n", name.c_str(), ready.size(), med,
              *std::min_element(ready.begin(), ready.end()), *std::max_element(ready.begin(), ready.end()),
              total.empty() ? "" : format("%.3f", median(total)).c_str(),
              torch_median > 0 ? format("%.2f", torch_median / med).c_str() : "");
  std::fflush(stdout);
}

}  // namespace

int run_spawn(const std::vector<std::string>& args, bool spmd) {
  po::options_description desc("mpitrain-bench spawn [options]   (run alone: this process is the driver)");
  int runs = 7, torch_runs = 3, row = 20;
  bool no_torch = false;
  desc.add_options()("help,h", "show this help and the meaning of every column")
      ("runs", po::value(&runs)->default_value(runs), "launches measured per worker count")
      ("in-a-row", po::value(&row)->default_value(row), "launches in a row for the repeated-launch figure")
      ("torch-runs", po::value(&torch_runs)->default_value(torch_runs), "runs of the PyTorch baseline")
      ("no-torch", po::bool_switch(&no_torch), "skip the PyTorch baseline");
  if (!parse_options(desc, args, kColumns)) return 0;
  if (runs < 1 || torch_runs < 1 || row < 1) throw UsageError("--runs, --torch-runs and --in-a-row must be positive");
  if (spmd) throw UsageError("spawn measures launches from a lone driver: run it without mpirun/srun");
  const std::string script =
      (std::filesystem::path(std::filesystem::read_symlink("/proc/self/exe")).parent_path() / "torch_spawn_baseline.py")
          .string();
  if (!no_torch && !std::filesystem::exists(script)) throw UsageError("missing " + script + " (or pass --no-torch)");

  std::printf("# mpitrain-bench spawn: %ld CPUs\n", sysconf(_SC_NPROCESSORS_ONLN));
  std::printf("case,runs,median_s,min_s,max_s,total_s,vs_torch\n");
  std::map<int, double> torch_median;
  for (int n : {2, 4}) {
    if (!no_torch) {
      std::vector<double> t;
      for (int i = 0; i < torch_runs; ++i) t.push_back(time_torch(n, script, 29517 + i));
      torch_median[n] = median(t);
      print_row("torch-mp-" + std::to_string(n), t, {}, 0);
    }
    Timing m = time_mpitrain(n, runs);
    print_row("mpitrain-" + std::to_string(n), m.ready, m.total, torch_median[n]);
  }
  const auto t0 = clock_type::now();
  Timing many = time_mpitrain(2, row);
  const double wall = std::chrono::duration<double>(clock_type::now() - t0).count();
  print_row("mpitrain-2-in-a-row-" + std::to_string(row), many.ready, many.total, torch_median[2]);
  std::printf("# %d launches of 2 workers in a row: %.2f s in all, %.3f s per launch\n", row, wall, wall / row);
  return 0;
}

}  // namespace mpitrain::bench
