// The defaults of the Strategy interface: state replicated on every rank (DDP-like strategies).
#include "mpitrain/strategy/strategy.hpp"

#include <torch/nn/utils/clip_grad.h>

#include "mpitrain/errors.hpp"

namespace mpitrain {

void Strategy::setup(torch::nn::Module& model, torch::optim::Optimizer* optimizer, Engine& engine) {
  model_ = &model;
  optimizer_ = optimizer;
  engine_ = &engine;
}

double Strategy::clip_grad_norm(double max_norm) {
  return torch::nn::utils::clip_grad_norm_(model_->parameters(), max_norm);
}

void Strategy::optimizer_step() {
  if (!optimizer_) throw ArgumentError(std::string(name()) + ": optimizer_step() without an optimizer at setup");
  optimizer_->step();
}

void Strategy::zero_grad() {
  torch::NoGradGuard no_grad;
  for (auto& p : model_->parameters())
    if (p.grad().defined()) p.mutable_grad().zero_();
}

void Strategy::save_optimizer_state(OptimizerStateWriter* out) {
  if (out && optimizer_) write_optimizer_state(*optimizer_, *model_, *out);
}

void Strategy::load_optimizer_state(OptimizerStateReader& in) {
  if (optimizer_) read_optimizer_state(*optimizer_, *model_, in);
}

}  // namespace mpitrain
