// Horovod's API for hand-written training loops (no Trainer): broadcast the starting point, then
// wrap the optimizer so that every gradient is submitted to the engine by name the moment backward
// produces it (negotiated, fused, reduced while backward goes on), and step() waits for them.
//   mpitrain::Engine engine(comm);                       // Coordinated mode (the default)
//   mpitrain::broadcast_parameters(model, engine);
//   mpitrain::broadcast_optimizer_state(sgd, engine);
//   mpitrain::DistributedOptimizer opt(sgd, model, engine, {.backward_passes_per_step = 2});
//   for (...) { opt.zero_grad(); loss.backward(); ...; opt.step(); }
// Works for graphs whose gradients arrive in a different order on each rank, and for parameters a
// rank did not use in a step (they contribute zeros).
#pragma once
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <memory>
#include <string>

#include "mpitrain/engine/engine.hpp"
#include "mpitrain/strategy/gradient_compression.hpp"

namespace mpitrain {

/// Collective: rank `root`'s parameters and buffers on every rank (named broadcasts).
void broadcast_parameters(torch::nn::Module& module, Engine& engine, int root = 0);
/// Collective: rank `root`'s optimizer state (momentum buffers, Adam moments, step counts, param
/// group options) on every rank, including ranks whose optimizer has not stepped yet.
void broadcast_optimizer_state(torch::optim::Optimizer& optimizer, Engine& engine, int root = 0);

struct DistributedOptimizerOptions {
  GradCompression compression = GradCompression::None;
  /// Backward passes accumulated locally before the gradients are reduced (and step() may run).
  int backward_passes_per_step = 1;
  /// Gradient names are prefix + parameter name; two wrappers on one engine need two prefixes.
  std::string prefix = "grad.";
};

class DistributedOptimizer {
 public:
  /// Collective. Registers a hook on every parameter of `model` that `optimizer` updates, whose
  /// .grad then lives in the engine's shared window (zero-copy reductions). Both, and `engine`,
  /// must outlive this wrapper; zero gradients in place (zero_grad() here does).
  DistributedOptimizer(torch::optim::Optimizer& optimizer, torch::nn::Module& model, Engine& engine,
                       DistributedOptimizerOptions options = {});
  ~DistributedOptimizer();
  DistributedOptimizer(const DistributedOptimizer&) = delete;
  DistributedOptimizer& operator=(const DistributedOptimizer&) = delete;

  /// Waits until every gradient holds its average over ranks (submitting those whose hook did
  /// not fire, zeros for gradients never produced).
  void synchronize();
  /// synchronize(), then the wrapped optimizer's step.
  void step();
  void zero_grad();
  torch::optim::Optimizer& optimizer() { return optimizer_; }

  struct Impl;

 private:
  torch::optim::Optimizer& optimizer_;
  std::unique_ptr<Impl> impl_;
  int passes_per_step_;
};

}  // namespace mpitrain
