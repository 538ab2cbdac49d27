#include "mpitrain/strategy/optim/adam.hpp"

#include <torch/torch.h>

#include <cmath>
#include <string>

#include "mpitrain/strategy/optim/fused_adam.hpp"

namespace mpitrain::optim {

namespace {

// The state torch's Adam/AdamW keep per parameter, created as theirs is on first use.
template <typename State, typename States, typename Options>
State& state_of(States& states, const torch::Tensor& p, const Options& options) {
  const std::string key = c10::guts::to_string(p.unsafeGetTensorImpl());
  auto found = states.find(key);
  if (found == states.end()) {
    auto s = std::make_unique<State>();
    s->step(0);
    s->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    s->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    if (options.amsgrad()) s->max_exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    found = states.emplace(key, std::move(s)).first;
  }
  return static_cast<State&>(*found->second);
}

// `like`'s shape and strides over the front of `scratch` (grown when too small); a plain
// fresh tensor where the layout is not dense (then torch's own allocation pattern).
torch::Tensor scratch_like(torch::Tensor& scratch, const torch::Tensor& like) {
  if (!like.is_non_overlapping_and_dense()) return torch::empty_like(like);
  if (!scratch.defined() || scratch.numel() < like.numel() || scratch.scalar_type() != like.scalar_type() ||
      scratch.device() != like.device())
    scratch = torch::empty({std::max<int64_t>(like.numel(), scratch.defined() ? scratch.numel() : 0)}, like.options());
  return scratch.as_strided(like.sizes(), like.strides());
}

// Adam's moment update and parameter step for one parameter with its raw gradient. Where the
// tensors allow (detail::fused_adam_applies: dense CPU float/double laid out alike), one
// fused pass; otherwise torch 1.13's ops in torch's order, with the weight decay applied
// as torch applies it and the denominator sqrt(v)/sqrt(bias_correction2) + eps built in
// place in `scratch`.
template <typename State, typename Options>
void adam_update(torch::Tensor& p, const torch::Tensor& raw_grad, State& state, const Options& options,
                 bool decoupled_decay, torch::Tensor& scratch) {
  state.step(state.step() + 1);
  const double beta1 = std::get<0>(options.betas()), beta2 = std::get<1>(options.betas());
  const double wd = options.weight_decay();
  auto& exp_avg = state.exp_avg();
  auto& exp_avg_sq = state.exp_avg_sq();
  torch::Tensor* max_exp_avg_sq = options.amsgrad() ? &state.max_exp_avg_sq() : nullptr;
  if (detail::fused_adam_applies(p, raw_grad, exp_avg, exp_avg_sq, max_exp_avg_sq)) {
    detail::fused_adam_update(p, raw_grad, exp_avg, exp_avg_sq, max_exp_avg_sq,
                              {options.lr(), beta1, beta2, options.eps(), wd, state.step(), options.amsgrad(),
                               decoupled_decay});
    return;
  }
  torch::Tensor grad = raw_grad;
  if (wd != 0 && decoupled_decay) p.mul_(1 - options.lr() * wd);
  if (wd != 0 && !decoupled_decay) grad = grad.add(p, wd);
  const double bias_correction1 = 1 - std::pow(beta1, state.step());
  const double bias_correction2 = 1 - std::pow(beta2, state.step());
  exp_avg.mul_(beta1).add_(grad, 1 - beta1);
  exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2);
  const torch::Tensor* second = &exp_avg_sq;
  if (max_exp_avg_sq) {
    torch::max_out(*max_exp_avg_sq, exp_avg_sq, *max_exp_avg_sq);
    second = max_exp_avg_sq;
  }
  torch::Tensor denom = scratch_like(scratch, *second);
  torch::sqrt_out(denom, *second);
  denom.div_(std::sqrt(bias_correction2)).add_(options.eps());
  p.addcdiv_(exp_avg, denom, -options.lr() / bias_correction1);
}

// torch's step() frame: the closure evaluated with grad mode on, then `update(p, options)`
// for every parameter that has a (dense) gradient.
template <typename Options, typename Update>
torch::Tensor for_each_gradient(std::vector<torch::optim::OptimizerParamGroup>& groups,
                                const torch::optim::Optimizer::LossClosure& closure, const char* who, Update&& update) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  for (auto& group : groups) {
    auto& options = static_cast<Options&>(group.options());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      TORCH_CHECK(!p.grad().is_sparse(), who, " does not support sparse gradients");
      update(p, options);
    }
  }
  return loss;
}

}  // namespace

torch::Tensor Adam::step(LossClosure closure) {
  return for_each_gradient<torch::optim::AdamOptions>(param_groups_, closure, "Adam", [&](torch::Tensor& p, auto& options) {
    auto& state = state_of<torch::optim::AdamParamState>(state_, p, options);
    adam_update(p, p.grad(), state, options, /*decoupled_decay=*/false, scratch_);
  });
}

torch::Tensor AdamW::step(LossClosure closure) {
  return for_each_gradient<torch::optim::AdamWOptions>(param_groups_, closure, "AdamW", [&](torch::Tensor& p, auto& options) {
    auto& state = state_of<torch::optim::AdamWParamState>(state_, p, options);
    adam_update(p, p.grad(), state, options, /*decoupled_decay=*/true, scratch_);
  });
}

}  // namespace mpitrain::optim
