// How gradients (and optimizer state) are kept in sync across ranks (DESIGN §3). The Trainer
// only calls these hooks, so DDP, Horovod-style and Sharded strategies plug in without touching it.
#pragma once
#include <torch/nn/module.h>

#include <string>

#include "mpitrain/engine/engine.hpp"

namespace mpitrain {

class Strategy {
 public:
  virtual ~Strategy() = default;
  virtual const char* name() const = 0;
  /// Collective: prepares `model` for training on the engine's world (e.g. rank 0's parameters
  /// and buffers to every rank). `model` must outlive the strategy.
  virtual void setup(torch::nn::Module& model, Engine& engine) = 0;
  /// Before each backward; sync = false while gradients accumulate locally (Lightning's no_sync).
  virtual void before_backward(bool sync) = 0;
  /// After a synchronising backward: returns when every parameter's .grad holds the average
  /// over ranks.
  virtual void after_backward() = 0;
  /// Zeros the gradients (use instead of optimizer.zero_grad(): they may live in shared buckets).
  virtual void zero_grad() = 0;
};

}  // namespace mpitrain
