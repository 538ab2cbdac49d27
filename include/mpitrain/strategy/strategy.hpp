// How gradients and optimizer state are kept in sync across ranks (DESIGN §3). Strategies are
// plug-ins: the Trainer only calls this interface and builds strategies by name from the registry
// (strategy/registry.hpp), so DDP, Horovod-style, Sharded or a user's own plug in without
// touching it. The call sequence of one optimizer step, on every rank:
//   before_backward(sync) -> backward -> [sync:] after_backward -> clip_grad_norm -> optimizer_step
//   -> zero_grad
// Calls marked collective must be made on every rank, in the same order.
#pragma once
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <map>
#include <string>

#include "mpitrain/engine/engine.hpp"
#include "mpitrain/strategy/optimizer_state.hpp"

namespace mpitrain {

class Strategy {
 public:
  virtual ~Strategy() = default;
  virtual const char* name() const = 0;

  /// Collective: prepares `model` and its `optimizer` (null when only evaluating) for the engine's
  /// world, e.g. rank 0's parameters and buffers to every rank. Both must outlive the strategy.
  /// Overrides call Strategy::setup first (it records the three for the defaults below). A
  /// ConfigError from setup (options that do not fit the world) must be raised alike on every rank.
  virtual void setup(torch::nn::Module& model, torch::optim::Optimizer* optimizer, Engine& engine);
  /// Before each backward; sync = false while gradients accumulate locally (Lightning's no_sync).
  virtual void before_backward(bool sync) {}
  /// After a synchronising backward: returns when every rank's gradients are what its optimizer
  /// step needs (DDP: every parameter's .grad holds the average over ranks).
  virtual void after_backward() {}
  /// Collective: scales gradients so that their global 2-norm is at most `max_norm`; returns the
  /// norm before clipping. Default: the norm of this rank's gradients (replicated after
  /// after_backward, so it is the global one).
  virtual double clip_grad_norm(double max_norm);
  /// Collective: one optimizer step. Default: optimizer.step() on every rank (replicated state).
  virtual void optimizer_step();
  /// Zeros the gradients (use instead of optimizer.zero_grad(): they may live in shared buckets).
  /// Default: zeros every defined .grad in place.
  virtual void zero_grad();

  /// Collective: the optimizer part of a checkpoint. `out` is non-null on rank 0 only (rank 0
  /// writes the file). Default: rank 0 writes its (replicated) optimizer.
  virtual void save_optimizer_state(OptimizerStateWriter* out);
  /// Collective: every rank reads from its own `in`. Default: every rank restores it all.
  virtual void load_optimizer_state(OptimizerStateReader& in);

  /// True if the strategy submits named collectives: the Trainer then builds its Engine in
  /// Coordinated mode (else FIFO, which costs no per-cycle agreement).
  virtual bool needs_coordinator() const { return false; }

  /// Framework statistics reported with the fit result (e.g. buckets, reductions), as numbers.
  virtual std::map<std::string, double> stats() const { return {}; }

 protected:
  torch::nn::Module* model_ = nullptr;
  torch::optim::Optimizer* optimizer_ = nullptr;
  Engine* engine_ = nullptr;
};

}  // namespace mpitrain
