// Sharded (ZeRO stages 1 and 2) parity: the same weights as DDP after 20 optimizer steps (Adam;
// AdamW with a schedule, clipping and accumulation; SGD with momentum), on any world size including
// one that does not divide the parameter count (3 ranks), with 1/N of the optimizer state per rank
// and, at stage 2, 1/N of the gradients held after the step.
#include <gtest/gtest.h>
#include <mpi.h>
#include <torch/torch.h>

#include <cmath>
#include <map>
#include <sstream>

#include "mpitrain/comm/agreement.hpp"
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
  int stage = 1;
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
  ShardedOptions so;
  so.stage = run.stage;
  so.ddp.first_bucket_bytes = 2048;  // several buckets even on this small model
  so.ddp.bucket_cap_bytes = 4096;
  Sharded sharded(so);
  const torch::Tensor got = train(sharded, comm, run);
  const auto st = sharded.stats();
  // 1/N of the state (a block may be up to N-1 padding elements larger per bucket), and the run's
  // own optimizer holds none.
  const double share = st.at("optimizer_state_bytes") / ddp_bytes;
  EXPECT_LE(share, 1.0 / comm.size() + 0.05) << "optimizer state share " << share;
  EXPECT_GT(share, 0.0);
  EXPECT_GT(st.at("buckets"), 1.0);
  EXPECT_EQ(st.at("total_elements"), double(want.numel()));
  const double grad_share = st.at("gradient_bytes") / (double(want.numel()) * 4);
  if (run.stage == 2) EXPECT_LE(grad_share, 1.0 / comm.size() + 0.05) << "gradient share " << grad_share;
  else EXPECT_GE(grad_share, 1.0) << "stage 1 keeps every gradient";
  return (got - want).abs().max().item<double>();
}

class ShardedParity : public ::testing::TestWithParam<int> {};  // the stage

TEST_P(ShardedParity, AdamMatchesDdp) {
  ShardRun run;
  run.stage = GetParam();
  const double d = parity(run);
  EXPECT_LE(d, 1e-5);
  std::printf("sharded stage %d vs DDP, Adam: max |dw| = %.3g\n", run.stage, d);
}

TEST_P(ShardedParity, AdamWWithScheduleClippingAndAccumulation) {
  ShardRun run;
  run.stage = GetParam();
  run.opt = Opt::AdamW;
  run.accumulate = 2;
  run.schedule_and_clip = true;
  const double d = parity(run);
  EXPECT_LE(d, 1e-5);
  std::printf("sharded stage %d vs DDP, AdamW + cosine + clip + accumulate 2: max |dw| = %.3g\n", run.stage, d);
}

TEST_P(ShardedParity, SgdWithMomentum) {
  ShardRun run;
  run.stage = GetParam();
  run.opt = Opt::Sgd;
  EXPECT_LE(parity(run), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Stages, ShardedParity, ::testing::Values(1, 2), [](const auto& info) {
  return "Stage" + std::to_string(info.param);
});

// Every element of every parameter is owned by exactly one rank, and ranks own equal shares.
TEST(Sharded, PartitionCoversEveryElementOnce) {
  MpiCommunicator comm(MPI_COMM_WORLD, {});
  for (int64_t cap : {int64_t(1) << 20, int64_t(1024)}) {  // one bucket; several (params straddle ranks)
    auto model = make_model();
    auto opt = make_optimizer(Opt::Adam, *model);
    EngineOptions fifo;
    fifo.mode = EngineMode::Fifo;
    Engine engine(comm, fifo);
    ShardedOptions so;
    so.ddp.first_bucket_bytes = so.ddp.bucket_cap_bytes = size_t(cap);
    Sharded s(so);
    s.setup(*model, opt.get(), engine);
    std::map<std::string, std::vector<int>> owners;  // param -> owner count per element
    for (auto& item : model->named_parameters()) owners[item.key()].assign(size_t(item.value().numel()), 0);
    int64_t mine = 0;
    for (int r = 0; r < comm.size(); ++r) {
      std::string blob;
      if (r == comm.rank())
        for (auto& pc : s.owned_pieces()) {
          blob += pc.name + " " + std::to_string(pc.begin) + " " + std::to_string(pc.length) + "\n";
          mine += pc.length;
        }
      broadcast_bytes(comm, blob, r);
      std::istringstream in(blob);
      std::string name;
      int64_t begin, length;
      while (in >> name >> begin >> length)
        for (int64_t e = begin; e < begin + length; ++e) ++owners.at(name).at(size_t(e));
    }
    for (auto& [name, v] : owners)
      for (size_t e = 0; e < v.size(); ++e) ASSERT_EQ(v[e], 1) << name << "[" << e << "] cap " << cap;
    const double buckets = s.stats().at("buckets");
    EXPECT_LE(std::abs(double(mine) - 1601.0 / comm.size()), buckets * comm.size()) << "unequal share, cap " << cap;
    if (cap == 1024) EXPECT_GT(buckets, 2.0);
  }
}

TEST(Sharded, BadOptionsAreConfigErrors) {
  ShardedOptions o;
  o.stage = 3;
  EXPECT_THROW(Sharded{o}, ConfigError);
  o.stage = 0;
  EXPECT_THROW(Sharded{o}, ConfigError);
  o.stage = 2;
  EXPECT_NO_THROW(Sharded{o});
}

}  // namespace
}  // namespace mpitrain
