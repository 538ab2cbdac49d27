// mpitrain-bench engine: the Horovod-style coordinator against plain MPI in the same run (DESIGN §4:
// ratios, never timed asserts). Per step, a set of named tensors is allreduced through the engine
// (negotiated, cached, fused) and, as baselines, as separate MPI_Allreduce calls and as one
// pre-fused MPI_Allreduce; the 64 MiB case also against the Communicator's own zero-copy path.
// Then MLP training samples/s with the Horovod strategy against DDP.
//
// Thread rule: while a Coordinated engine lives its thread owns MPI, so every baseline runs on the
// engine thread, as one FIFO operation per timed window.
#include <mpi.h>
#include <torch/torch.h>

#include <boost/program_options.hpp>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "mpitrain/comm/mpi_communicator.hpp"
#include "mpitrain/engine/engine.hpp"
#include "mpitrain/models/models.hpp"
#include "mpitrain/strategy/ddp.hpp"
#include "mpitrain/strategy/horovod.hpp"

namespace po = boost::program_options;

namespace mpitrain::bench {
namespace {

const char* kColumns = R"(Output (CSV on stdout, rank 0 only; lines starting with '#' are comments):
  case          tensors x size per step: 100x4K, 10x4M, 1x64M
  method        separate_mpi  one MPI_Allreduce(MPI_IN_PLACE, float, SUM) per tensor: the baseline
                fused_mpi     one MPI_Allreduce over all the step's bytes in one pre-fused buffer
                zero_copy     (1x64M) the Communicator's allreduce on a SharedBuffer (no copies)
                engine        Engine::allreduce_async per tensor by name (Sum), then wait for all:
                              negotiation (response cache); tensors under 1 MiB fused (copies in
                              and out of the fusion buffer), larger ones reduced in place
                engine_shared (1xN) the same on a tensor from Engine::shared_tensor (in the shared
                              window): the coordinator's overhead over zero_copy
  step_us       median over windows of (max over ranks of the window's time) / steps, in us; every
                step starts after a barrier (untimed), with the tensors rewritten (untimed)
  vs_separate   step_us of separate_mpi / step_us of this method (>1: faster than separate calls)
  cache_hit_rate  engine: tensors agreed through the response cache / tensors, over the timed steps
  round_trips_per_step  engine: negotiations with rank 0 per timed step (0 once the cache is warm)
  cycles_per_step       engine: agreement cycles per timed step (barriers included)
  check         ok when every rank's result is the exact sum, for every tensor of the last step
Then the training comparison (rows 'train'):
  method        ddp | horovod: MLP 784-1024-1024-10, SGD, batch per rank, same data
  step_us       median over repeats of the time per step (max over ranks)
  vs_separate   here: samples/s of this method / samples/s of ddp)";

using Clock = std::chrono::steady_clock;

struct Case {
  std::string name;
  int tensors;
  size_t bytes;  // per tensor
};

double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// Max over ranks, on the engine thread.
double max_over_ranks(Engine& engine, double v) {
  engine.enqueue([&](Communicator& c) { c.allreduce(&v, &v, 1, DType::Float64, ReduceOp::Max); }).wait();
  return v;
}

std::string check_sums(Engine& engine, const std::vector<at::Tensor>& ts, int n) {
  // Every tensor was filled with rank + 1 and summed: n (n + 1) / 2 everywhere.
  int64_t bad = 0;
  const double want = n * (n + 1) / 2.0;
  for (const auto& t : ts) bad += t.ne(want).sum().item<int64_t>();
  engine.enqueue([&](Communicator& c) { c.allreduce(&bad, &bad, 1, DType::Int64, ReduceOp::Sum); }).wait();
  return bad == 0 ? "ok" : "WRONG";
}

// An MPI baseline: `steps` of (fill, barrier, timed op) inside one FIFO operation.
double mpi_window(Engine& engine, int steps, const std::function<void()>& fill, const std::function<void()>& op) {
  double t = 0;
  engine.enqueue([&](Communicator&) {
    for (int s = 0; s < steps; ++s) {
      fill();
      MPI_Barrier(MPI_COMM_WORLD);
      const double t0 = MPI_Wtime();
      op();
      t += MPI_Wtime() - t0;
    }
  }).wait();
  return max_over_ranks(engine, t) / steps;
}

double engine_window(Engine& engine, int steps, std::vector<at::Tensor>& ts, const std::vector<std::string>& names, int rank) {
  double t = 0;
  std::vector<Engine::Handle> hs(ts.size());
  for (int s = 0; s < steps; ++s) {
    for (auto& x : ts) x.fill_(rank + 1);
    engine.enqueue([](Communicator& c) { c.barrier(); }).wait();
    const auto t0 = Clock::now();
    for (size_t i = 0; i < ts.size(); ++i) hs[i] = engine.allreduce_async(names[i], ts[i], ReduceOp::Sum);
    for (auto& h : hs) h.wait();
    t += seconds(t0, Clock::now());
  }
  return max_over_ranks(engine, t) / steps;
}

// Samples/s of `steps` MLP steps under `strategy` (its own engine: FIFO for DDP, coordinated for Horovod).
double train_step_seconds(Communicator& comm, const std::string& strategy, int steps, int warmup, int batch) {
  EngineOptions eo = EngineOptions::from_env();
  std::unique_ptr<Strategy> s;
  if (strategy == "ddp") {
    eo.mode = EngineMode::Fifo;
    s = std::make_unique<DDP>();
  } else {
    s = std::make_unique<Horovod>();
  }
  Engine engine(comm, eo);
  torch::manual_seed(0);
  auto model = models::make_mlp(784, {1024, 1024}, 10);
  torch::optim::SGD opt(model->parameters(), torch::optim::SGDOptions(0.01).momentum(0.9));
  s->setup(*model, &opt, engine);
  torch::manual_seed(1 + comm.rank());
  torch::Tensor x = torch::randn({batch, 784}), y = torch::randint(0, 10, {batch});
  Clock::time_point t0;
  for (int i = 0; i < warmup + steps; ++i) {
    if (i == warmup) {
      engine.enqueue([](Communicator& c) { c.barrier(); }).wait();
      t0 = Clock::now();
    }
    s->zero_grad();
    s->before_backward(true);
    torch::nn::functional::cross_entropy(model->forward(x), y).backward();
    s->after_backward();
    s->optimizer_step();
  }
  const double dt = seconds(t0, Clock::now());
  return max_over_ranks(engine, dt) / steps;
}

}  // namespace

int run_engine(const std::vector<std::string>& args, bool spmd) {
  po::options_description desc("mpitrain-bench engine [options]   (run under mpirun -n N; 2 ranks for the issue's figures)");
  int windows = 7, steps = 50, train_steps = 60, train_warmup = 10, batch = 64, repeats = 5;
  std::string cases_s = "100x4K,10x4M,1x64M";
  bool no_train = false;
  desc.add_options()("help,h", "show this help and the meaning of every column")
      ("cases", po::value(&cases_s)->default_value(cases_s), "comma-separated TENSORSxSIZE cases (SIZE with K, M, G)")
      ("windows", po::value(&windows)->default_value(windows), "timed windows per method and case (median reported)")
      ("steps", po::value(&steps)->default_value(steps), "steps per window (the 64M case uses a fifth)")
      ("train-steps", po::value(&train_steps)->default_value(train_steps), "timed MLP steps per strategy and repeat")
      ("train-warmup", po::value(&train_warmup)->default_value(train_warmup), "untimed MLP steps first")
      ("batch-size", po::value(&batch)->default_value(batch), "MLP examples per rank per step")
      ("repeats", po::value(&repeats)->default_value(repeats), "MLP runs per strategy, alternating (median reported)")
      ("no-train", po::bool_switch(&no_train), "skip the MLP comparison");
  int rank = 0, inited = 0;
  MPI_Initialized(&inited);
  if (inited) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (!parse_options(desc, args, kColumns, rank == 0)) return 0;
  if (windows < 1 || steps < 1 || train_steps < 1 || train_warmup < 0 || batch < 1 || repeats < 1)
    throw UsageError("--windows, --steps, --train-steps, --batch-size and --repeats must be positive");
  std::vector<Case> cases;
  for (const auto& c : split(cases_s, ',')) {
    const auto x = c.find('x');
    if (x == std::string::npos) throw UsageError("case '" + c + "' is not TENSORSxSIZE (e.g. 100x4K)");
    int k = 0;
    try {
      k = std::stoi(c.substr(0, x));
    } catch (const std::exception&) {
      throw UsageError("case '" + c + "': not a tensor count");
    }
    const size_t b = parse_bytes(c.substr(x + 1));
    if (k < 1 || b < 4 || b % 4) throw UsageError("case '" + c + "': need at least 1 tensor of a multiple of 4 bytes");
    cases.push_back({c, k, b});
  }
  if (!spmd) throw UsageError("engine runs on the ranks of an MPI job: mpirun -n 2 mpitrain-bench engine");

  MpiCommunicator comm(MPI_COMM_WORLD, {});
  const int n = comm.size();
  if (rank == 0) {
    std::printf("# mpitrain-bench engine: %d ranks, float32 sum, %d windows; fusion threshold %zu bytes, cycle %lld us\n", n,
                windows, EngineOptions::from_env().fusion_threshold, (long long)EngineOptions::from_env().cycle_time.count());
    std::printf("case,method,step_us,vs_separate,cache_hit_rate,round_trips_per_step,cycles_per_step,check\n");
  }
  for (const Case& c : cases) {
    Engine engine(comm, EngineOptions::from_env());
    const int64_t count = int64_t(c.bytes / 4);
    const int window_steps = c.bytes * size_t(c.tensors) >= (size_t(32) << 20) ? std::max(1, steps / 5) : steps;
    std::vector<at::Tensor> ts;
    std::vector<std::string> names;
    for (int i = 0; i < c.tensors; ++i) {
      ts.push_back(at::empty({count}, at::kFloat));
      names.push_back("bench." + std::to_string(i));
    }
    at::Tensor fused = at::empty({count * c.tensors}, at::kFloat);
    SharedBuffer shared;
    if (c.tensors == 1) engine.enqueue([&](Communicator& cc) { shared = cc.allocate_shared(c.bytes); }).wait();
    const float v = float(rank + 1);
    auto separate_fill = [&] { for (auto& x : ts) x.fill_(v); };
    auto separate_op = [&] {
      for (auto& x : ts) MPI_Allreduce(MPI_IN_PLACE, x.data_ptr(), int(count), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    };
    auto fused_fill = [&] { fused.fill_(v); };
    auto fused_op = [&] { MPI_Allreduce(MPI_IN_PLACE, fused.data_ptr(), int(fused.numel()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); };
    float* z = shared ? shared.as<float>() : nullptr;
    auto zero_fill = [&] { std::fill(z, z + count, v); };
    auto zero_op = [&] { comm.allreduce(z, z, count, DType::Float32, ReduceOp::Sum); };

    // Warm-up: page faults, the first negotiation, the fusion buffer.
    engine_window(engine, 2, ts, names, rank);
    mpi_window(engine, 1, separate_fill, separate_op);
    mpi_window(engine, 1, fused_fill, fused_op);
    std::vector<at::Tensor> shared_ts;
    std::vector<std::string> shared_names{"bench.shared"};
    if (z) {
      shared_ts.push_back(engine.shared_tensor({count}, at::kFloat));
      engine_window(engine, 2, shared_ts, shared_names, rank);
    }
    std::vector<double> sep, fus, zer, eng, esh;
    const EngineStats before = engine.stats();
    for (int w = 0; w < windows; ++w) {  // round-robin: machine noise hits every method alike
      sep.push_back(mpi_window(engine, window_steps, separate_fill, separate_op));
      fus.push_back(mpi_window(engine, window_steps, fused_fill, fused_op));
      if (z) zer.push_back(mpi_window(engine, window_steps, zero_fill, zero_op));
      eng.push_back(engine_window(engine, window_steps, ts, names, rank));
      if (z) esh.push_back(engine_window(engine, window_steps, shared_ts, shared_names, rank));
    }
    const EngineStats after = engine.stats();
    std::string check = check_sums(engine, ts, n);
    const std::string shared_check = z ? check_sums(engine, shared_ts, n) : "";
    const double timed_steps = double(windows) * window_steps;
    const double tensors = double(after.tensors - before.tensors);
    const double hit = tensors > 0 ? double(after.cache_hits - before.cache_hits) / tensors : 0;
    const double trips = double(after.negotiations - before.negotiations) / timed_steps;
    const double cycles = double(after.cycles - before.cycles) / timed_steps;
    const double base = median(sep);
    if (rank == 0) {
      std::printf("%s,separate_mpi,%.1f,1.00,,,,\n", c.name.c_str(), base * 1e6);
      std::printf("%s,fused_mpi,%.1f,%.2f,,,,\n", c.name.c_str(), median(fus) * 1e6, base / median(fus));
      if (z) std::printf("%s,zero_copy,%.1f,%.2f,,,,\n", c.name.c_str(), median(zer) * 1e6, base / median(zer));
      std::printf("%s,engine,%.1f,%.2f,%.3f,%.3f,%.2f,%s\n", c.name.c_str(), median(eng) * 1e6, base / median(eng), hit, trips,
                  cycles, check.c_str());
      if (z)
        std::printf("%s,engine_shared,%.1f,%.2f,,,,%s\n", c.name.c_str(), median(esh) * 1e6, base / median(esh),
                    shared_check.c_str());
      std::fflush(stdout);
    }
  }
  if (no_train) return 0;
  std::vector<double> ddp, hvd;
  for (int r = 0; r < repeats; ++r) {  // alternating, first one then the other: drift hits both
    const bool ddp_first = r % 2 == 0;
    if (ddp_first) ddp.push_back(train_step_seconds(comm, "ddp", train_steps, train_warmup, batch));
    hvd.push_back(train_step_seconds(comm, "horovod", train_steps, train_warmup, batch));
    if (!ddp_first) ddp.push_back(train_step_seconds(comm, "ddp", train_steps, train_warmup, batch));
  }
  if (rank == 0) {
    const double d = median(ddp), h = median(hvd);
    std::printf("train,ddp,%.1f,1.00,,,,\n", d * 1e6);
    std::printf("train,horovod,%.1f,%.2f,,,,\n", h * 1e6, d / h);
    std::printf("# MLP samples/s (all ranks): ddp %.0f, horovod %.0f; horovod / ddp = %.3f\n", batch * n / d,
                batch * n / h, d / h);
  }
  return 0;
}

}  // namespace mpitrain::bench
