// The one-pass Adam kernel alone: which layouts it takes, and its update against Adam's
// formula evaluated independently in double precision from the same float inputs.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "mpitrain/strategy/optim/fused_adam.hpp"

namespace {

using mpitrain::optim::detail::AdamStep;
using mpitrain::optim::detail::fused_adam_applies;
using mpitrain::optim::detail::fused_adam_update;

TEST(FusedAdam, AppliesOnlyToDenseCpuFloatTensorsLaidOutAlike) {
  auto p = torch::randn({8, 4, 3, 3}).contiguous(torch::MemoryFormat::ChannelsLast);
  auto like = [&] { return torch::zeros_like(p, torch::MemoryFormat::Preserve); };
  EXPECT_TRUE(fused_adam_applies(p, like(), like(), like(), nullptr));
  auto vmax = like();
  EXPECT_TRUE(fused_adam_applies(p, like(), like(), like(), &vmax));
  EXPECT_FALSE(fused_adam_applies(p, torch::zeros({8, 4, 3, 3}), like(), like(), nullptr)) << "NCHW grad, NHWC param";
  EXPECT_FALSE(fused_adam_applies(p, like(), like(), like().contiguous(), nullptr)) << "state laid out unlike p";
  auto contiguous_vmax = vmax.contiguous();
  EXPECT_FALSE(fused_adam_applies(p, like(), like(), like(), &contiguous_vmax));
  EXPECT_FALSE(fused_adam_applies(p, like().to(torch::kDouble), like(), like(), nullptr)) << "dtype mismatch";
  auto half = p.to(torch::kHalf);
  EXPECT_FALSE(fused_adam_applies(half, torch::zeros_like(half), torch::zeros_like(half), torch::zeros_like(half), nullptr));
  auto strided = torch::randn({10, 10}).slice(1, 0, 10, 2);  // every other column: not dense
  auto s2 = torch::zeros_like(strided);
  EXPECT_FALSE(fused_adam_applies(strided, s2, s2, s2, nullptr));
  auto d = torch::randn({5}, torch::kDouble);
  EXPECT_TRUE(fused_adam_applies(d, torch::zeros_like(d), torch::zeros_like(d), torch::zeros_like(d), nullptr));
}

// Adam (or AdamW with `decoupled`) by its definition, in double, element by element.
struct Reference {
  torch::Tensor p, m, v, vmax;
  void step(const torch::Tensor& grad, const AdamStep& s) {
    auto g = grad.to(torch::kDouble);
    if (s.decoupled) p = p * (1 - s.lr * s.weight_decay);
    else g = g + s.weight_decay * p;
    m = s.beta1 * m + (1 - s.beta1) * g;
    v = s.beta2 * v + (1 - s.beta2) * g * g;
    auto second = v;
    if (s.amsgrad) second = vmax = torch::maximum(vmax, v);
    const double bc1 = 1 - std::pow(s.beta1, s.step), bc2 = 1 - std::pow(s.beta2, s.step);
    p = p - (s.lr / bc1) * m / (second.sqrt() / std::sqrt(bc2) + s.eps);
  }
};

// Largest difference relative to the tensor's scale (elements near zero stay meaningful).
double rel_diff(const torch::Tensor& ours, const torch::Tensor& ref) {
  return (ours.to(torch::kDouble) - ref).abs().max().item<double>() / ref.abs().max().item<double>();
}

void expect_follows_reference(bool decoupled, double weight_decay, bool amsgrad) {
  torch::manual_seed(5);
  // Big enough to be split over threads, odd enough to leave a vector tail.
  auto p = torch::randn({70001});
  auto m = torch::zeros_like(p), v = torch::zeros_like(p), vmax = torch::zeros_like(p);
  Reference ref{p.to(torch::kDouble), torch::zeros({70001}, torch::kDouble), torch::zeros({70001}, torch::kDouble),
                torch::zeros({70001}, torch::kDouble)};
  for (int64_t step = 1; step <= 10; ++step) {
    auto g = torch::randn({70001}) * 0.1;
    const AdamStep s{1e-2, 0.9, 0.999, 1e-8, weight_decay, step, amsgrad, decoupled};
    fused_adam_update(p, g, m, v, amsgrad ? &vmax : nullptr, s);
    ref.step(g, s);
  }
  // float keeps ~7 digits: ten steps of rounding stay near 1e-7, a wrong term gives 1e-3 or more.
  EXPECT_LE(rel_diff(p, ref.p), 1e-5) << "decoupled=" << decoupled << " wd=" << weight_decay << " amsgrad=" << amsgrad;
  EXPECT_LE(rel_diff(m, ref.m), 1e-5);
  EXPECT_LE(rel_diff(v, ref.v), 1e-5);
  if (amsgrad) EXPECT_LE(rel_diff(vmax, ref.vmax), 1e-5);
}

TEST(FusedAdam, FollowsAdamsDefinition) {
  expect_follows_reference(false, 0.0, false);
  expect_follows_reference(false, 0.1, false);
  expect_follows_reference(false, 0.1, true);
}

TEST(FusedAdam, FollowsAdamWsDefinition) {
  expect_follows_reference(true, 0.05, false);
  expect_follows_reference(true, 0.05, true);
}

}  // namespace
