// mpitrain-bench train: training throughput of an MLP 784-1024-1024-10 (SGD, batch 64 per rank),
// or with `seed` the seed example's torchvision ResNet-18 (Adam, batch 128 per rank), one LibTorch
// thread per rank: 1 rank (plain LibTorch), 2 ranks with mpitrain DDP, and PyTorch DDP (gloo) on
// the same model from /usr/bin/python3 (torchvision's resnet18 for the seed), all in the same run.
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>

#include <boost/program_options.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "bench_common.hpp"
#include "mpitrain/launch/launcher.hpp"
#include "mpitrain/launch/registry.hpp"
#include "mpitrain/models/models.hpp"
#include "mpitrain/strategy/ddp.hpp"
#include "mpitrain/strategy/optim/adam.hpp"
#include "mpitrain/train/placement.hpp"

namespace po = boost::program_options;

namespace mpitrain::bench {
namespace {

const char* kColumns = R"(Output (CSV; '#' lines are comments):
  case            mpitrain-1: plain LibTorch on one rank (the scaling baseline)
                  mpitrain-ddp-N: N ranks, mpitrain DDP (buckets in the shared window, engine thread)
                  torch-1: PyTorch, one process, no DDP (its scaling_eff: torch-1 / mpitrain-1)
                  torch-ddp-N: PyTorch DistributedDataParallel, gloo over loopback, N processes
  ranks           processes
  samples_per_s   examples per second over all ranks, steady state (after warm-up), slowest rank's time;
                  median over the rounds (--repeats: each round runs every case once, in the order above)
  step_ms         milliseconds per optimizer step (of that median)
  scaling_eff     samples_per_s / (ranks x mpitrain-1 samples_per_s), within each round; median
  vs_torch        samples_per_s / torch-ddp-N samples_per_s, within each round; median
'#' lines before the CSV give every round's figures and the bound 2 x mpitrain-1 / torch-ddp-2 (the
most two ranks could reach), after it each round's vs_torch and scaling_eff.)";

// Runs on every worker: warm-up, then `steps` timed SGD steps; returns all ranks' samples/s.
nlohmann::json train_entry(TaskContext& ctx, const nlohmann::json& p) {
  const int64_t batch = p.at("batch"), steps = p.at("steps"), warmup = p.at("warmup");
  const bool resnet = p.value("model", "mlp") == "resnet18";
  torch::manual_seed(0);
  std::shared_ptr<models::Net> model = resnet ? models::make_resnet18(1, 10) : models::make_mlp(784, {1024, 1024}, 10);
  const Placement place{torch::kCPU, parse_memory_format(p.value("memory_format", "contiguous"))};
  place.apply(*model);  // as the Trainer does: before the strategy and the optimizer see it
  std::unique_ptr<Engine> engine;
  std::unique_ptr<DDP> ddp;
  if (ctx.world_size() > 1) {
    EngineOptions fifo;
    fifo.mode = EngineMode::Fifo;  // DDP needs no coordinator
    engine = std::make_unique<Engine>(ctx.comm(), fifo);
    DDPOptions o;
    o.bucket_cap_bytes = size_t(p.value("bucket_cap_mb", 25.0) * (1 << 20));
    o.first_bucket_bytes = size_t(p.value("first_bucket_mb", 1.0) * (1 << 20));
    ddp = std::make_unique<DDP>(o);
    ddp->setup(*model, nullptr, *engine);
  }
  std::unique_ptr<torch::optim::Optimizer> opt;
  if (resnet) opt = std::make_unique<mpitrain::optim::Adam>(model->parameters(), torch::optim::AdamOptions(1e-3));
  else opt = std::make_unique<torch::optim::SGD>(model->parameters(), torch::optim::SGDOptions(0.01).momentum(0.9));
  torch::Tensor x = place.apply(resnet ? torch::randn({batch, 1, 28, 28}) : torch::randn({batch, 784}));
  torch::Tensor y = torch::randint(0, 10, {batch});
  // --profile: PyTorch's legacy profiler over the timed steps (the Python baseline uses the same one).
  const std::string trace = p.value("profile", "");
  std::unique_ptr<torch::autograd::profiler::RecordProfile> profile;
  double t = 0;
  for (int64_t i = 0; i < warmup + steps; ++i) {
    if (i == warmup) {
      ctx.comm().barrier();
      if (!trace.empty()) profile = std::make_unique<torch::autograd::profiler::RecordProfile>(trace);
      t = MPI_Wtime();
    }
    if (ddp) ddp->zero_grad();
    else opt->zero_grad();
    torch::nn::functional::cross_entropy(model->forward(x), y).backward();
    if (ddp) ddp->after_backward();
    opt->step();
  }
  if (engine) engine->synchronize();
  double dt = MPI_Wtime() - t;
  profile.reset();  // writes the trace
  ddp.reset();
  engine.reset();
  ctx.comm().allreduce(&dt, &dt, 1, DType::Float64, ReduceOp::Max);
  return {{"samples_per_s", double(steps * batch * ctx.world_size()) / dt}, {"step_ms", dt / double(steps) * 1e3}};
}
MPITRAIN_REGISTER_ENTRY_POINT("mpitrain-bench.train", train_entry);

struct TorchRun {
  std::string script, model, memory_format;
  int steps, warmup, batch;
  double operator()(int ranks, const std::string& trace = "") const {
    return run_and_read("/usr/bin/python3 " + script + " " + std::to_string(ranks) + " 29611 " + std::to_string(steps) + " " +
                            std::to_string(warmup) + " " + std::to_string(batch) + " " + model + " " +
                            (trace.empty() ? "-" : trace) + " " + memory_format,
                        "samples_per_s");
  }
};

// --profile DIR: one profiled run of mpitrain-1 and of torch-1 (same steps, same profiler), then
// profile_compare.py's table of where each spends its time, operator by operator.
int profile_single_process(const std::filesystem::path& dir, const std::filesystem::path& bin, const nlohmann::json& params,
                           const TorchRun& run_torch) {
  std::filesystem::create_directories(dir);
  const std::string ours = (dir / "mpitrain-1.trace.json").string(), theirs = (dir / "torch-1.trace.json").string();
  nlohmann::json p = params;
  p["profile"] = ours;
  Result r = launch("mpitrain-bench.train", p, {1, 1, false});
  if (!r.ok()) throw Error("profiled mpitrain-1 run failed: " + r.error);
  run_torch(1, theirs);
  const std::string cmd = "/usr/bin/python3 " + (bin / "profile_compare.py").string() + " " + ours + " " + theirs + " " +
                          std::to_string(run_torch.steps) + " > " + (dir / "compare.csv").string();
  if (std::system(cmd.c_str()) != 0) throw Error("profile comparison failed: " + cmd);
  std::ifstream table(dir / "compare.csv");
  std::cout << table.rdbuf() << "# table: " << (dir / "compare.csv").string() << ", traces: " << ours << ", " << theirs
            << std::endl;
  return 0;
}

// One round's samples/s per case (0: not run) and the medians over rounds, with each ratio taken
// within its round.
struct Round {
  double mpitrain1 = 0, torch1 = 0, torch2 = 0, mpitrain2 = 0;
};

class Rounds {
 public:
  explicit Rounds(bool with_torch) : torch_(with_torch) {}
  Round& add() { return v_.emplace_back(); }

  std::string describe(size_t i) const {
    const Round& r = v_[i];
    std::string s = format("# round %zu: mpitrain-1 %.1f, mpitrain-ddp-2 %.1f (scaling %.2f)", i + 1, r.mpitrain1,
                           r.mpitrain2, r.mpitrain2 / (2 * r.mpitrain1));
    if (torch_)
      s += format(", torch-1 %.1f, torch-ddp-2 %.1f, vs_torch %.2f, bound 2 x mpitrain-1 / torch-ddp-2 %.2f", r.torch1,
                  r.torch2, r.mpitrain2 / r.torch2, 2 * r.mpitrain1 / r.torch2);
    return s;
  }

  void print_csv(int batch) const {
    std::printf("case,ranks,samples_per_s,step_ms,scaling_eff,vs_torch\n");
    row("mpitrain-1", 1, &Round::mpitrain1, batch, "1.00", "");
    if (torch_) {
      row("torch-1", 1, &Round::torch1, batch, ratio([](const Round& r) { return r.torch1 / r.mpitrain1; }), "");
      row("torch-ddp-2", 2, &Round::torch2, batch, ratio([](const Round& r) { return r.torch2 / (2 * r.mpitrain1); }),
          "1.00");
    }
    row("mpitrain-ddp-2", 2, &Round::mpitrain2, batch, ratio([](const Round& r) { return r.mpitrain2 / (2 * r.mpitrain1); }),
        torch_ ? ratio([](const Round& r) { return r.mpitrain2 / r.torch2; }) : "");
    if (torch_ && v_.size() > 1)
      std::printf("# vs_torch per round: %s; scaling_eff per round: %s\n",
                  each([](const Round& r) { return r.mpitrain2 / r.torch2; }).c_str(),
                  each([](const Round& r) { return r.mpitrain2 / (2 * r.mpitrain1); }).c_str());
  }

 private:
  template <class F>
  std::string ratio(F f) const {
    std::vector<double> x;
    for (const Round& r : v_) x.push_back(f(r));
    return format("%.2f", median(x));
  }
  template <class F>
  std::string each(F f) const {
    std::string s;
    for (const Round& r : v_) s += format(s.empty() ? "%.2f" : " %.2f", f(r));
    return s;
  }
  void row(const char* name, int ranks, double Round::*field, int batch, const std::string& scaling,
           const std::string& vs) const {
    std::vector<double> x;
    for (const Round& r : v_) x.push_back(r.*field);
    const double sps = median(x);
    std::printf("%s,%d,%.1f,%.3f,%s,%s\n", name, ranks, sps, ranks * batch / sps * 1e3, scaling.c_str(), vs.c_str());
  }

  bool torch_;
  std::vector<Round> v_;
};

}  // namespace

int run_train(const std::vector<std::string>& args, bool spmd, bool seed) {
  po::options_description desc(std::string("mpitrain-bench ") + (seed ? "seed" : "train") +
                               " [options]   (run alone: this process is the driver)");
  const std::string model = seed ? "resnet18" : "mlp";
  int steps = seed ? 30 : 200, warmup = seed ? 3 : 20, batch = seed ? 128 : 64, repeats = 3;
  double bucket_mb = 25, first_mb = 1;
  bool no_torch = false;
  std::string profile_dir;
  // The seed example trains channels-last (its default); PyTorch's baseline runs as the guide does.
  std::string memory_format = seed ? "channels_last" : "contiguous", torch_memory_format = "contiguous";
  desc.add_options()("help,h", "show this help and the meaning of every column")
      ("steps", po::value(&steps)->default_value(steps), "timed steps per run")
      ("warmup", po::value(&warmup)->default_value(warmup), "untimed steps first")
      ("batch-size", po::value(&batch)->default_value(batch), "examples per rank per step")
      ("repeats", po::value(&repeats)->default_value(repeats), "rounds (each runs every case once; medians reported)")
      ("bucket-cap-mb", po::value(&bucket_mb)->default_value(bucket_mb), "DDP bucket size (MiB)")
      ("first-bucket-mb", po::value(&first_mb)->default_value(first_mb), "DDP first bucket size (MiB)")
      ("memory-format", po::value(&memory_format)->default_value(memory_format),
       "mpitrain's layout of 4-D weights and batches: contiguous | channels_last (the Trainer's memory_format)")
      ("torch-memory-format", po::value(&torch_memory_format)->default_value(torch_memory_format),
       "PyTorch's: contiguous (the seed guide's) | channels_last (model.to(memory_format=torch.channels_last))")
      ("no-torch", po::bool_switch(&no_torch), "skip the PyTorch DDP baseline")
      ("profile", po::value(&profile_dir), "instead of timing: profile mpitrain-1 and torch-1 (same steps, PyTorch's legacy "
                                           "profiler), keep both traces in this folder, print the time per step of each operator");
  if (!parse_options(desc, args, kColumns)) return 0;
  if (steps < 1 || warmup < 0 || batch < 1 || repeats < 1) throw UsageError("--steps, --batch-size and --repeats must be positive");
  if (spmd) throw UsageError("train launches its own workers: run it without mpirun/srun");
  for (const std::string* f : {&memory_format, &torch_memory_format})
    if (*f != "contiguous" && *f != "channels_last")
      throw UsageError("--memory-format and --torch-memory-format take contiguous or channels_last (got '" + *f + "')");
  const std::filesystem::path bin = std::filesystem::read_symlink("/proc/self/exe").parent_path();
  const TorchRun run_torch{(bin / "torch_ddp_baseline.py").string(), model, torch_memory_format, steps, warmup, batch};
  const nlohmann::json params = {{"batch", batch},           {"steps", steps},          {"warmup", warmup},
                                 {"bucket_cap_mb", bucket_mb}, {"first_bucket_mb", first_mb}, {"model", model},
                                 {"memory_format", memory_format}};
  if (!profile_dir.empty()) return profile_single_process(profile_dir, bin, params, run_torch);

  auto mpitrain_run = [&](int ranks) {
    Result r = launch("mpitrain-bench.train", params, {ranks, 1, false});
    if (!r.ok()) throw Error("benchmark run failed: " + r.error);
    return r.value.at("samples_per_s").get<double>();
  };
  std::printf("# mpitrain-bench %s: %s, batch %d per rank, 1 thread per rank, %d steps after %d; memory format: "
              "mpitrain %s, torch %s; %d rounds\n",
              seed ? "seed" : "train",
              seed ? "ResNet-18 (torchvision's, 1-channel 7x7/2 stem), Adam 1e-3, 1x28x28 inputs"
                   : "MLP 784-1024-1024-10, SGD",
              batch, steps, warmup, memory_format.c_str(), torch_memory_format.c_str(), repeats);
  // Rounds: every case once per round, so that the machine's drift (2-4x over minutes here)
  // falls on all cases alike; ratios are taken within a round, then their median reported.
  Rounds rounds(!no_torch);
  for (int i = 0; i < repeats; ++i) {
    Round& r = rounds.add();
    r.mpitrain1 = mpitrain_run(1);
    if (!no_torch) {
      r.torch1 = run_torch(1);  // PyTorch's own single process: how much PyTorch gains from its second rank
      r.torch2 = run_torch(2);
    }
    r.mpitrain2 = mpitrain_run(2);
    std::printf("%s\n", rounds.describe(i).c_str());
    std::fflush(stdout);
  }
  rounds.print_csv(batch);
  return 0;
}

}  // namespace mpitrain::bench
