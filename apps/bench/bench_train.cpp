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

namespace po = boost::program_options;

namespace mpitrain::bench {
namespace {

const char* kColumns = R"(Output (CSV; '#' lines are comments):
  case            mpitrain-1: plain LibTorch on one rank (the scaling baseline)
                  mpitrain-ddp-N: N ranks, mpitrain DDP (buckets in the shared window, engine thread)
                  torch-1: PyTorch, one process, no DDP (its scaling_eff: torch-1 / mpitrain-1)
                  torch-ddp-N: PyTorch DistributedDataParallel, gloo over loopback, N processes
  ranks           processes
  samples_per_s   examples per second over all ranks, steady state (after warm-up), slowest rank's time
  step_ms         milliseconds per optimizer step
  scaling_eff     samples_per_s / (ranks x mpitrain-1 samples_per_s)
  vs_torch        samples_per_s / torch-ddp-N samples_per_s at the same rank count)";

// Runs on every worker: warm-up, then `steps` timed SGD steps; returns all ranks' samples/s.
nlohmann::json train_entry(TaskContext& ctx, const nlohmann::json& p) {
  const int64_t batch = p.at("batch"), steps = p.at("steps"), warmup = p.at("warmup");
  const bool resnet = p.value("model", "mlp") == "resnet18";
  torch::manual_seed(0);
  std::shared_ptr<models::Net> model = resnet ? models::make_resnet18(1, 10) : models::make_mlp(784, {1024, 1024}, 10);
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
  torch::Tensor x = resnet ? torch::randn({batch, 1, 28, 28}) : torch::randn({batch, 784}), y = torch::randint(0, 10, {batch});
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

double run_torch(int ranks, const std::string& script, int steps, int warmup, int batch, const std::string& model,
                 const std::string& trace = "") {
  return run_and_read("/usr/bin/python3 " + script + " " + std::to_string(ranks) + " 29611 " + std::to_string(steps) + " " +
                          std::to_string(warmup) + " " + std::to_string(batch) + " " + model + (trace.empty() ? "" : " " + trace),
                      "samples_per_s");
}

// --profile DIR: one profiled run of mpitrain-1 and of torch-1 (same steps, same profiler), then
// profile_compare.py's table of where each spends its time, operator by operator.
int profile_single_process(const std::filesystem::path& dir, const std::filesystem::path& bin, const nlohmann::json& params,
                           int steps, int warmup, int batch, const std::string& model) {
  std::filesystem::create_directories(dir);
  const std::string ours = (dir / "mpitrain-1.trace.json").string(), theirs = (dir / "torch-1.trace.json").string();
  nlohmann::json p = params;
  p["profile"] = ours;
  Result r = launch("mpitrain-bench.train", p, {1, 1, false});
  if (!r.ok()) throw Error("profiled mpitrain-1 run failed: " + r.error);
  run_torch(1, (bin / "torch_ddp_baseline.py").string(), steps, warmup, batch, model, theirs);
  const std::string cmd = "/usr/bin/python3 " + (bin / "profile_compare.py").string() + " " + ours + " " + theirs + " " +
                          std::to_string(steps) + " > " + (dir / "compare.csv").string();
  if (std::system(cmd.c_str()) != 0) throw Error("profile comparison failed: " + cmd);
  std::ifstream table(dir / "compare.csv");
  std::cout << table.rdbuf() << "# table: " << (dir / "compare.csv").string() << ", traces: " << ours << ", " << theirs
            << std::endl;
  return 0;
}

}  // namespace

int run_train(const std::vector<std::string>& args, bool spmd, bool seed) {
  po::options_description desc(std::string("mpitrain-bench ") + (seed ? "seed" : "train") +
                               " [options]   (run alone: this process is the driver)");
  const std::string model = seed ? "resnet18" : "mlp";
  int steps = seed ? 30 : 200, warmup = seed ? 3 : 20, batch = seed ? 128 : 64, repeats = 3;
  double bucket_mb = 25, first_mb = 1;
  bool no_torch = false;
  std::string profile_dir;
  desc.add_options()("help,h", "show this help and the meaning of every column")
      ("steps", po::value(&steps)->default_value(steps), "timed steps per run")
      ("warmup", po::value(&warmup)->default_value(warmup), "untimed steps first")
      ("batch-size", po::value(&batch)->default_value(batch), "examples per rank per step")
      ("repeats", po::value(&repeats)->default_value(repeats), "runs per case (median reported)")
      ("bucket-cap-mb", po::value(&bucket_mb)->default_value(bucket_mb), "DDP bucket size (MiB)")
      ("first-bucket-mb", po::value(&first_mb)->default_value(first_mb), "DDP first bucket size (MiB)")
      ("no-torch", po::bool_switch(&no_torch), "skip the PyTorch DDP baseline")
      ("profile", po::value(&profile_dir), "instead of timing: profile mpitrain-1 and torch-1 (same steps, PyTorch's legacy "
                                           "profiler), keep both traces in this folder, print the time per step of each operator");
  if (!parse_options(desc, args, kColumns)) return 0;
  if (steps < 1 || warmup < 0 || batch < 1 || repeats < 1) throw UsageError("--steps, --batch-size and --repeats must be positive");
  if (spmd) throw UsageError("train launches its own workers: run it without mpirun/srun");
  const std::filesystem::path bin = std::filesystem::read_symlink("/proc/self/exe").parent_path();
  const std::string script = (bin / "torch_ddp_baseline.py").string();
  const nlohmann::json params = {{"batch", batch},           {"steps", steps},          {"warmup", warmup},
                                 {"bucket_cap_mb", bucket_mb}, {"first_bucket_mb", first_mb}, {"model", model}};
  if (!profile_dir.empty()) return profile_single_process(profile_dir, bin, params, steps, warmup, batch, model);

  auto mpitrain_case = [&](int ranks) {
    std::vector<double> sps, ms;
    for (int i = 0; i < repeats; ++i) {
      Result r = launch("mpitrain-bench.train", params, {ranks, 1, false});
      if (!r.ok()) throw Error("benchmark run failed: " + r.error);
      sps.push_back(r.value.at("samples_per_s"));
      ms.push_back(r.value.at("step_ms"));
    }
    return std::pair{median(sps), median(ms)};
  };
  std::printf("# mpitrain-bench %s: %s, batch %d per rank, 1 thread per rank, %d steps after %d\n", seed ? "seed" : "train",
              seed ? "ResNet-18 (torchvision's, 1-channel 7x7/2 stem), Adam 1e-3, 1x28x28 inputs"
                   : "MLP 784-1024-1024-10, SGD",
              batch, steps, warmup);
  std::printf("case,ranks,samples_per_s,step_ms,scaling_eff,vs_torch\n");
  auto [one, one_ms] = mpitrain_case(1);
  std::printf("mpitrain-1,1,%.1f,%.3f,1.00,\n", one, one_ms);
  std::fflush(stdout);
  double torch2 = 0;
  if (!no_torch) {
    // PyTorch's own single process: how much PyTorch gains from its second rank (its scaling).
    std::vector<double> t1, t;
    for (int i = 0; i < repeats; ++i) t1.push_back(run_torch(1, script, steps, warmup, batch, model));
    const double torch1 = median(t1);
    std::printf("torch-1,1,%.1f,%.3f,%.2f,\n", torch1, batch / torch1 * 1e3, torch1 / one);
    for (int i = 0; i < repeats; ++i) t.push_back(run_torch(2, script, steps, warmup, batch, model));
    torch2 = median(t);
    std::printf("torch-ddp-2,2,%.1f,%.3f,%.2f,1.00\n", torch2, 2 * batch / torch2 * 1e3, torch2 / (2 * one));
    std::fflush(stdout);
  }
  auto [two, two_ms] = mpitrain_case(2);
  std::printf("mpitrain-ddp-2,2,%.1f,%.3f,%.2f,%s\n", two, two_ms, two / (2 * one),
              torch2 > 0 ? format("%.2f", two / torch2).c_str() : "");
  return 0;
}

}  // namespace mpitrain::bench
