// Sharded (ZeRO stage 1) parity: the same weights as DDP after 20 optimizer steps (Adam; AdamW with
// a schedule, clipping and accumulation; SGD with momentum), on any world size including one that
// does not divide the parameter count (3 ranks), with 1/N of the optimizer state per rank.
#include <gtest/gtest.h>
#include <mpi.h>
#include <torch/torch.h>

#include <cmath>

#include "mpitrain/comm/mpi_communicator.hpp"
#include "mpitrain/data/data_loader.hpp"
#include "mpitrain/data/synthetic.hpp"
#include "mpitrain/engine/engine.hpp"
#include "mpitrain/strategy/ddp.hpp"
#include "mpitrain/strategy/sharded.hpp"

namespace mpitrain {
namespace {

// 32*37 + 37 + 37*10 + 10 = 1601 elements: odd, so no world size here divides it.
torch::nn::Sequential make_model() {
  torch::manual_seed(11);
  return torch::nn::Sequential(torch::nn::Linear(32, 37), torch::nn::Tanh(), torch::nn::Linear(37, 10));
}

enum class Opt { Adam, AdamW, Sgd };

std::unique_ptr<torch::optim::Optimizer> make_optimizer(Opt o, torch::nn::Module& m) {
  if (o == Opt::Adam) return std::make_unique<torch::optim::Adam>(m.parameters(), torch::optim::AdamOptions(1e-2));
  if (o == Opt::AdamW)
    return std::make_unique<torch::optim::AdamW>(m.parameters(), torch::optim::AdamWOptions(1e-2).weight_decay(0.05));
  return std::make_unique<torch::optim::SGD>(m.parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
}

struct ShardRun {
  Opt opt = Opt::Adam;
  int accumulate = 1;
  bool schedule_and_clip = false;
};

double state_bytes(torch::optim::Optimizer& o) {
  double b = 0;
  for (auto& [k, st] : o.state())
    if (auto* a = dynamic_cast<torch::optim::AdamParamState*>(st.get()))
      b += double((a->exp_avg().numel() + a->exp_avg_sq().numel()) * 4);
    else if (auto* w = dynamic_cast<torch::optim::AdamWParamState*>(st.get()))
      b += double((w->exp_avg().numel() + w->exp_avg_sq().numel()) * 4);
    else if (auto* s = dynamic_cast<torch::optim::SGDParamState*>(st.get()))
      b += double(s->momentum_buffer().numel() * 4);
  return b;
}

// Trains with `strategy` through the Trainer's call sequence; returns the flat weights.
torch::Tensor train(Strategy& strategy, Communicator& comm, const ShardRun& run, double* opt_bytes = nullptr) {
  const int n = comm.size(), rank = comm.rank();
  constexpr int kSteps = 20;
  constexpr int64_t kBatch = 8;
  const int64_t examples = int64_t(kSteps) * run.accumulate * kBatch * n;
  auto data = make_synthetic_classification(examples, {32}, 10, 5);
  auto model = make_model();
  auto opt = make_optimizer(run.opt, *model);
  EngineOptions fifo;
  fifo.mode = EngineMode::Fifo;
  Engine engine(comm, fifo);
  strategy.setup(*model, opt.get(), engine);
  DataLoader loader(data, DistributedSampler(examples, n, rank, true, 3), kBatch);
  auto epoch = loader.epoch();
  for (int s = 0; s < kSteps; ++s) {
    if (run.schedule_and_clip)  // a cosine schedule, as LR schedulers do it: on the run's optimizer
      for (auto& g : opt->param_groups())
        static_cast<torch::optim::AdamWOptions&>(g.options()).lr(1e-2 * 0.5 * (1 + std::cos(M_PI * s / kSteps)));
    strategy.zero_grad();
    for (int a = 0; a < run.accumulate; ++a) {
      Batch b = *epoch->next();
      const bool sync = a == run.accumulate - 1;
      strategy.before_backward(sync);
      (torch::nn::functional::cross_entropy(model->forward(b.input), b.target) / run.accumulate).backward();
      if (sync) strategy.after_backward();
    }
    if (run.schedule_and_clip) strategy.clip_grad_norm(0.5);
    strategy.optimizer_step();
  }
  if (opt_bytes) *opt_bytes = state_bytes(*opt);
  std::vector<torch::Tensor> flat;
  for (auto& p : model->parameters()) flat.push_back(p.detach().reshape({-1}).clone());
  return torch::cat(flat);
}

double parity(const ShardRun& run) {
  MpiCommunicator comm(MPI_COMM_WORLD, {});
  DDP ddp;
  double ddp_bytes = 0;
  const torch::Tensor want = train(ddp, comm, run, &ddp_bytes);
  Sharded sharded;
  const torch::Tensor got = train(sharded, comm, run);
  const auto st = sharded.stats();
  // 1/N of the state (a slice may be a ceil() larger), and the run's own optimizer holds none.
  const double share = st.at("optimizer_state_bytes") / ddp_bytes;
  EXPECT_LE(share, 1.0 / comm.size() + 0.05) << "optimizer state share " << share;
  EXPECT_GT(share, 0.0);
  EXPECT_EQ(st.at("total_elements"), double(want.numel()));
  return (got - want).abs().max().item<double>();
}

TEST(ShardedParity, AdamMatchesDdp) {
  const double d = parity({});
  EXPECT_LE(d, 1e-5);
  std::printf("sharded stage 1 vs DDP, Adam: max |dw| = %.3g\n", d);
}

TEST(ShardedParity, AdamWWithScheduleClippingAndAccumulation) {
  ShardRun run;
  run.opt = Opt::AdamW;
  run.accumulate = 2;
  run.schedule_and_clip = true;
  EXPECT_LE(parity(run), 1e-5);
}

TEST(ShardedParity, SgdWithMomentum) {
  ShardRun run;
  run.opt = Opt::Sgd;
  EXPECT_LE(parity(run), 1e-5);
}

TEST(Sharded, PartitionCoversEveryElementOnce) {
  MpiCommunicator comm(MPI_COMM_WORLD, {});
  auto model = make_model();
  auto opt = make_optimizer(Opt::Adam, *model);
  EngineOptions fifo;
  fifo.mode = EngineMode::Fifo;
  Engine engine(comm, fifo);
  Sharded s;
  s.setup(*model, opt.get(), engine);
  auto [lo, hi] = s.owned_range();
  int64_t range[2] = {lo, hi}, all[64] = {0};
  MPI_Allgather(range, 2, MPI_INT64_T, all, 2, MPI_INT64_T, MPI_COMM_WORLD);
  int64_t next = 0;
  for (int r = 0; r < comm.size(); ++r) {
    EXPECT_EQ(all[2 * r], next) << "rank " << r << " starts where rank " << r - 1 << " ends";
    next = all[2 * r + 1];
  }
  EXPECT_EQ(next, 1601);
}

TEST(Sharded, BadOptionsAreConfigErrors) {
  ShardedOptions o;
  o.stage = 3;
  EXPECT_THROW(Sharded{o}, ConfigError);
  o.stage = 0;
  EXPECT_THROW(Sharded{o}, ConfigError);
  o.stage = 2;
  EXPECT_THROW(Sharded{o}, ConfigError);  // not implemented yet: said, not silently stage 1
}

}  // namespace
}  // namespace mpitrain
