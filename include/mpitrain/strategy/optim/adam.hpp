#pragma once
// Adam and AdamW as torch's, with a step that is one pass over memory and allocates nothing.
//
// LibTorch 1.13's C++ Adam/AdamW run eight element-wise ops per parameter and build the
// denominator out of place (`exp_avg_sq.sqrt() / sqrt(bias_correction2)`: two fresh
// parameter-sized tensors per step, each a new mmap for a large parameter). On a CPU that
// step is memory-bound: a quarter of a one-thread ResNet-18 training step. These classes
// are drop-in subclasses: the same AdamOptions / AdamParamState (so schedulers, Sharded,
// checkpoints and torch::optim::serialize see a torch::optim::Adam) and the same arithmetic
// in the same order. Where the tensors allow (dense CPU float/double, gradient and state
// laid out like the parameter: every parameter in practice) the update is one fused loop
// (fused_adam.hpp), equal to torch's up to the rounding of fused multiply-adds; elsewhere
// torch's ops run, bit-identical, with the denominator in one reused scratch buffer
// (tests/unit/strategy/test_adam.cpp).
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>

namespace mpitrain::optim {

class Adam : public torch::optim::Adam {
 public:
  using torch::optim::Adam::Adam;
  torch::Tensor step(LossClosure closure = nullptr) override;

 private:
  torch::Tensor scratch_;  // flat; a denominator view of it per parameter
};

class AdamW : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;
  torch::Tensor step(LossClosure closure = nullptr) override;

 private:
  torch::Tensor scratch_;
};

}  // namespace mpitrain::optim
