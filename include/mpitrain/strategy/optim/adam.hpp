#pragma once
// Adam and AdamW whose step allocates nothing per parameter.
//
// LibTorch 1.13's C++ Adam/AdamW build the denominator out of place
// (`exp_avg_sq.sqrt() / sqrt(bias_correction2)`): two fresh tensors the size of each
// parameter per step, and for a large parameter each one is a new mmap whose pages fault
// in again. On ResNet-18 that made the optimizer ~20 ms/step slower than PyTorch's own
// (the profile of `mpitrain-bench seed --profile`). These classes are drop-in subclasses:
// the same AdamOptions / AdamParamState (so schedulers, Sharded, checkpoints and
// torch::optim::serialize see a torch::optim::Adam), the same arithmetic in the same order
// (bit-identical to torch's step, tests/unit/strategy/test_adam.cpp), with the denominator
// written into one scratch buffer reused across parameters and steps.
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
