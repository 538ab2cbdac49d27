// mpitrain::optim::Adam / AdamW against LibTorch's own: the same numbers step for step (to
// the rounding of fused multiply-adds where the one-pass kernel runs, bit for bit where
// torch's ops run), the same state (a checkpoint of one resumes in the other), on
// parameters of every layout the fused kernel and the scratch buffer have to handle.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sstream>

#include "mpitrain/strategy/optim/adam.hpp"

namespace {

// Parameters of assorted shapes and layouts: a large one (its own mmap in a fresh
// allocation), a channels-last conv weight, a transposed (non-contiguous but dense) one,
// a bias, and one that never gets a gradient.
std::vector<torch::Tensor> make_params(uint64_t seed, torch::Dtype dtype = torch::kFloat) {
  torch::manual_seed(seed);
  const auto o = torch::TensorOptions().dtype(dtype);
  std::vector<torch::Tensor> ps = {
      torch::randn({256, 512}, o),
      torch::randn({16, 8, 3, 3}, o).contiguous(torch::MemoryFormat::ChannelsLast),
      torch::randn({24, 40}, o).t(),
      torch::randn({7}, o),
      torch::randn({5}, o),
  };
  for (auto& p : ps) p.set_requires_grad(true);
  return ps;
}

void set_grads(std::vector<torch::Tensor>& ps, int step) {
  torch::manual_seed(1000 + step);
  for (size_t i = 0; i + 1 < ps.size(); ++i) ps[i].mutable_grad() = torch::randn_like(ps[i]) * (1.0 + i);
}

double max_diff(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, (a[i] - b[i]).abs().max().item<double>());
  return m;
}

// Runs `steps` steps of Ours and Theirs from the same parameters and gradients; returns
// the largest parameter difference.
template <typename Ours, typename Theirs, typename Options>
double run_both(const Options& options, int steps, torch::Dtype dtype = torch::kFloat) {
  auto a = make_params(7, dtype), b = make_params(7, dtype);
  Ours ours(a, options);
  Theirs theirs(b, options);
  for (int s = 0; s < steps; ++s) {
    set_grads(a, s);
    set_grads(b, s);
    ours.step();
    theirs.step();
  }
  EXPECT_GT(max_diff(a, make_params(7, dtype)), 1e-3) << "the optimizer did not move the parameters";
  return max_diff(a, b);
}

// Parameters are O(1) and move ~lr per step; a wrong term in the update moves them by
// ~1e-3 or more within 20 steps, while FMA rounding differences stay within a few ulp of
// the parameter per step: 1e-5 in float, 1e-12 in double.
constexpr double kFloatTolerance = 1e-5, kDoubleTolerance = 1e-12;

template <typename Ours, typename Theirs, typename Options>
void expect_matches(const Options& options) {
  EXPECT_LE((run_both<Ours, Theirs>(options, 20)), kFloatTolerance);
  EXPECT_LE((run_both<Ours, Theirs>(options, 20, torch::kDouble)), kDoubleTolerance);
}

TEST(Adam, MatchesLibTorchStepForStep) {
  using torch::optim::AdamOptions;
  using Ours = mpitrain::optim::Adam;
  using Theirs = torch::optim::Adam;
  expect_matches<Ours, Theirs>(AdamOptions(1e-2));
  expect_matches<Ours, Theirs>(AdamOptions(1e-2).weight_decay(0.1));
  expect_matches<Ours, Theirs>(AdamOptions(1e-2).amsgrad(true));
  expect_matches<Ours, Theirs>(AdamOptions(1e-2).amsgrad(true).weight_decay(0.1));
  expect_matches<Ours, Theirs>(AdamOptions(3e-3).betas({0.8, 0.95}).eps(1e-6));
}

TEST(AdamW, MatchesLibTorchStepForStep) {
  using torch::optim::AdamWOptions;
  using Ours = mpitrain::optim::AdamW;
  using Theirs = torch::optim::AdamW;
  expect_matches<Ours, Theirs>(AdamWOptions(1e-2));
  expect_matches<Ours, Theirs>(AdamWOptions(1e-2).weight_decay(0.05));
  expect_matches<Ours, Theirs>(AdamWOptions(1e-2).amsgrad(true));
}

// A gradient laid out unlike its parameter (here: transposed strides) cannot go through the
// fused pass; torch's ops then run in torch's order and the result is bit-identical.
TEST(Adam, GradientLaidOutUnlikeItsParameterIsBitIdenticalToLibTorch) {
  for (bool amsgrad : {false, true}) {
    torch::manual_seed(11);
    auto a = torch::randn({40, 24}, torch::requires_grad()), b = a.detach().clone().set_requires_grad(true);
    mpitrain::optim::Adam ours(std::vector<torch::Tensor>{a}, torch::optim::AdamOptions(1e-2).weight_decay(0.1).amsgrad(amsgrad));
    torch::optim::Adam theirs(std::vector<torch::Tensor>{b}, torch::optim::AdamOptions(1e-2).weight_decay(0.1).amsgrad(amsgrad));
    for (int s = 0; s < 10; ++s) {
      auto g = torch::randn({24, 40}).t();  // strides {1, 40}: not a's {24, 1}
      a.mutable_grad() = g;
      b.mutable_grad() = g.clone();
      ours.step();
      theirs.step();
    }
    EXPECT_EQ((a - b).abs().max().item<double>(), 0.0) << "amsgrad=" << amsgrad;
  }
}

// A state saved by ours loads into LibTorch's Adam (and back) and both go on identically:
// checkpoints written before and after the switch stay interchangeable.
TEST(Adam, StateIsLibTorchsAdamState) {
  auto a = make_params(3), b = make_params(3);
  mpitrain::optim::Adam ours(a, torch::optim::AdamOptions(1e-2));
  for (int s = 0; s < 5; ++s) {
    set_grads(a, s);
    ours.step();
  }
  std::stringstream saved;
  {
    torch::serialize::OutputArchive archive;
    ours.save(archive);
    archive.save_to(saved);
  }
  for (size_t i = 0; i < a.size(); ++i) b[i].data().copy_(a[i].data());
  torch::optim::Adam theirs(b, torch::optim::AdamOptions(1e-2));
  {
    torch::serialize::InputArchive archive;
    archive.load_from(saved);
    theirs.load(archive);
  }
  ASSERT_EQ(theirs.state().size(), 4u);  // the parameter without a gradient has none
  for (int s = 5; s < 10; ++s) {
    set_grads(a, s);
    set_grads(b, s);
    ours.step();
    theirs.step();
  }
  EXPECT_LE(max_diff(a, b), kFloatTolerance);
  for (auto& [key, st] : ours.state()) {
    auto* adam = dynamic_cast<torch::optim::AdamParamState*>(st.get());
    ASSERT_NE(adam, nullptr);
    EXPECT_EQ(adam->step(), 10);
  }
}

TEST(Adam, RejectsSparseGradients) {
  auto p = torch::zeros({4, 3}, torch::requires_grad());
  p.mutable_grad() = torch::eye(4).narrow(1, 0, 3).to_sparse();
  mpitrain::optim::Adam ours(std::vector<torch::Tensor>{p}, torch::optim::AdamOptions(1e-2));
  EXPECT_THROW(ours.step(), c10::Error);
}

}  // namespace
