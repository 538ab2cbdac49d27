// mpitrain-bench memory: per-rank memory of DDP against Sharded stage 1 and 2 (ZeRO) with Adam on
// an MLP of >= 50 M parameters, on 1, 2 and 4 spawned ranks: optimizer-state bytes, gradient bytes
// held after the step, peak RSS, samples/s, each beside the formula ZeRO gives for it, and every
// Sharded figure as a ratio to DDP's at the same rank count, measured in the same run.
#include <torch/torch.h>

#include <boost/program_options.hpp>
#include <cstdio>
#include <fstream>
#include <map>

#include "bench_common.hpp"
#include "mpitrain/launch/launcher.hpp"
#include "mpitrain/launch/registry.hpp"
#include "mpitrain/models/models.hpp"
#include "mpitrain/strategy/ddp.hpp"
#include "mpitrain/strategy/sharded.hpp"

namespace po = boost::program_options;

namespace mpitrain::bench {
namespace {

const char* kColumns = R"(Output (CSV; '#' lines are comments). Per rank, the largest over ranks:
  strategy        ddp | sharded1 (ZeRO-1: optimizer state sharded) | sharded2 (ZeRO-2: and gradients)
  ranks           N, spawned workers (one LibTorch thread each)
  params          P, trainable parameters (fp32)
  state_MB        optimizer-state bytes held (Adam's exp_avg + exp_avg_sq), 1e6 bytes
  state_formula   what ZeRO says: 8P (ddp), 8P/N (sharded1, sharded2)
  grad_MB         gradient bytes held after backward and step (ddp, sharded1: every .grad, in the
                  buckets; sharded2: the averaged gradients this rank owns, plus any .grad left)
  grad_formula    4P (ddp, sharded1), 4P/N (sharded2)
  rss_MB          peak resident set (VmHWM) of the worker process. Shared-memory pages count in
                  full in every process that touched them, so a zero-copy collective that reads a
                  peer's slot counts that slot again here (DDP's buckets, Sharded's parameters)
  pss_MB          peak proportional set size (Pss of /proc/self/smaps_rollup, a shared page split
                  among the processes mapping it), sampled after setup, after every backward and
                  after every step (transients inside a step show only in rss_MB)
  samples_per_s   examples per second over all ranks, timed steps only, slowest rank's time
  state_vs_ddp    state_MB / ddp's state_MB at the same N (ZeRO: 1/N)
  grad_vs_ddp     grad_MB / ddp's grad_MB at the same N (sharded2: 1/N)
  rss_saving_vs_state_saving  (ddp rss_MB - rss_MB) / (ddp state_MB - state_MB): the share of the
                  optimizer-state saving that shows in peak RSS (>= 0.8 wanted; empty at N = 1)
  pss_saving_vs_state_saving  the same with pss_MB
  speed_vs_ddp    samples_per_s / ddp's samples_per_s at the same N)";

double peak_rss_mb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) * 1024 / 1e6;  // kB
  return 0;
}

// Pss in MB: this process's share of every page it maps (shared pages divided among their users).
double pss_mb() {
  std::ifstream in("/proc/self/smaps_rollup");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("Pss:", 0) == 0) return std::stod(line.substr(4)) * 1024 / 1e6;  // kB
  return 0;
}

double adam_state_bytes(torch::optim::Optimizer& o) {
  double b = 0;
  for (auto& [k, st] : o.state())
    if (auto* a = dynamic_cast<torch::optim::AdamParamState*>(st.get()))
      b += double((a->exp_avg().numel() + a->exp_avg_sq().numel()) * a->exp_avg().element_size());
  return b;
}

// One worker: `steps` Adam steps after `warmup`, then the figures (max over ranks).
nlohmann::json memory_entry(TaskContext& ctx, const nlohmann::json& p) {
  const int64_t batch = p.at("batch"), steps = p.at("steps"), warmup = p.at("warmup");
  const std::string strategy = p.at("strategy");
  std::vector<int64_t> hidden = p.at("hidden").get<std::vector<int64_t>>();
  torch::manual_seed(0);
  auto model = models::make_mlp(784, hidden, 10);
  torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(1e-4));
  EngineOptions fifo;
  fifo.mode = EngineMode::Fifo;
  Engine engine(ctx.comm(), fifo);
  std::unique_ptr<Strategy> s;
  if (strategy == "ddp") {
    s = std::make_unique<DDP>();
  } else {
    ShardedOptions o;
    o.stage = strategy == "sharded2" ? 2 : 1;
    s = std::make_unique<Sharded>(o);
  }
  s->setup(*model, &opt, engine);
  double pss = pss_mb();
  torch::Tensor x = torch::randn({batch, 784}), y = torch::randint(0, 10, {batch});
  double t = 0;
  for (int64_t i = 0; i < warmup + steps; ++i) {
    if (i == warmup) {
      engine.enqueue([](Communicator& c) { c.barrier(); }).wait();
      t = MPI_Wtime();
    }
    s->zero_grad();
    s->before_backward(true);
    torch::nn::functional::cross_entropy(model->forward(x), y).backward();
    s->after_backward();
    pss = std::max(pss, pss_mb());
    s->optimizer_step();
    pss = std::max(pss, pss_mb());
  }
  double figures[5] = {MPI_Wtime() - t, 0, 0, peak_rss_mb(), pss};
  const auto st = s->stats();
  figures[1] = strategy == "ddp" ? adam_state_bytes(opt) : st.at("optimizer_state_bytes");
  figures[2] = st.count("gradient_bytes") ? st.at("gradient_bytes") : st.at("bucket_bytes");
  engine.enqueue([&](Communicator& c) { c.allreduce(figures, figures, 5, DType::Float64, ReduceOp::Max); }).wait();
  int64_t params = 0;
  for (auto& q : model->parameters()) params += q.numel();
  return {{"samples_per_s", double(steps * batch * ctx.world_size()) / figures[0]},
          {"state_bytes", figures[1]}, {"grad_bytes", figures[2]}, {"rss_mb", figures[3]}, {"pss_mb", figures[4]}, {"params", params}};
}
MPITRAIN_REGISTER_ENTRY_POINT("mpitrain-bench.memory", memory_entry);

}  // namespace

int run_memory(const std::vector<std::string>& args, bool spmd) {
  po::options_description desc("mpitrain-bench memory [options]   (run alone: this process is the driver)");
  int steps = 3, warmup = 1, batch = 16;
  std::string ranks_s = "1,2,4", hidden_s = "4096,4096,4096,4096", strategies_s = "ddp,sharded1,sharded2";
  desc.add_options()("help,h", "show this help and the meaning of every column")
      ("ranks", po::value(&ranks_s)->default_value(ranks_s), "comma-separated rank counts")
      ("strategies", po::value(&strategies_s)->default_value(strategies_s), "subset of ddp,sharded1,sharded2 (ddp first: the baseline)")
      ("hidden", po::value(&hidden_s)->default_value(hidden_s), "hidden layer widths of the MLP 784-...-10 (default: 53.6 M parameters)")
      ("steps", po::value(&steps)->default_value(steps), "timed Adam steps per case")
      ("warmup", po::value(&warmup)->default_value(warmup), "untimed steps first (Adam's state exists after one)")
      ("batch-size", po::value(&batch)->default_value(batch), "examples per rank per step");
  if (!parse_options(desc, args, kColumns)) return 0;
  if (steps < 1 || warmup < 1 || batch < 1) throw UsageError("--steps, --warmup and --batch-size must be at least 1");
  if (spmd) throw UsageError("memory launches its own workers: run it without mpirun/srun");
  std::vector<int> ranks;
  for (const auto& r : split(ranks_s, ',')) {
    const int v = std::atoi(r.c_str());
    if (v < 1 || v > 64) throw UsageError("--ranks: '" + r + "' is not a rank count in [1, 64]");
    ranks.push_back(v);
  }
  std::vector<int64_t> hidden;
  for (const auto& h : split(hidden_s, ',')) {
    const long v = std::atol(h.c_str());
    if (v < 1) throw UsageError("--hidden: '" + h + "' is not a positive width");
    hidden.push_back(v);
  }
  const std::vector<std::string> strategies = split(strategies_s, ',');
  if (strategies.empty() || strategies[0] != "ddp") throw UsageError("--strategies must start with ddp (the baseline)");
  for (const auto& s : strategies)
    if (s != "ddp" && s != "sharded1" && s != "sharded2") throw UsageError("unknown strategy '" + s + "' (ddp, sharded1, sharded2)");

  std::string widths = hidden_s;
  std::replace(widths.begin(), widths.end(), ',', '-');
  std::printf("# mpitrain-bench memory: MLP 784-%s-10, Adam, batch %d per rank, %d steps after %d\n", widths.c_str(),
              batch, steps, warmup);
  std::printf("strategy,ranks,params,state_MB,state_formula,grad_MB,grad_formula,rss_MB,pss_MB,samples_per_s,"
              "state_vs_ddp,grad_vs_ddp,rss_saving_vs_state_saving,pss_saving_vs_state_saving,speed_vs_ddp\n");
  for (int n : ranks) {
    std::map<std::string, double> ddp;
    for (const auto& s : strategies) {
      Result r = launch("mpitrain-bench.memory",
                        {{"strategy", s}, {"batch", batch}, {"steps", steps}, {"warmup", warmup}, {"hidden", hidden}},
                        {n, 1, false});
      if (!r.ok()) throw Error("benchmark run failed: " + r.error);
      const double P = r.value.at("params"), state = double(r.value.at("state_bytes")) / 1e6,
                   grad = double(r.value.at("grad_bytes")) / 1e6, rss = r.value.at("rss_mb"), pss = r.value.at("pss_mb"),
                   sps = r.value.at("samples_per_s");
      const double state_f = 8 * P / 1e6 / (s == "ddp" ? 1 : n), grad_f = 4 * P / 1e6 / (s == "sharded2" ? n : 1);
      if (s == "ddp") ddp = {{"state", state}, {"grad", grad}, {"rss", rss}, {"pss", pss}, {"sps", sps}};
      const double state_saving = ddp["state"] - state;
      auto share = [&](double saved) { return state_saving > 1 ? format("%.2f", saved / state_saving) : std::string(); };
      std::printf("%s,%d,%.0f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.3f,%.3f,%s,%s,%.2f\n", s.c_str(), n, P, state,
                  state_f, grad, grad_f, rss, pss, sps, state / ddp["state"], grad / ddp["grad"],
                  share(ddp["rss"] - rss).c_str(), share(ddp["pss"] - pss).c_str(), sps / ddp["sps"]);
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace mpitrain::bench
