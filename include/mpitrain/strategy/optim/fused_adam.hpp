#pragma once
// Adam's whole per-parameter update in one pass over memory (DeepSpeed's cpu_adam idea).
//
// torch's step is eight element-wise ops, each a full pass over parameter-sized tensors:
// ~20 tensor reads/writes per element. On a CPU that is memory-bound: for ResNet-18
// (11.2 M parameters) it was a quarter of a one-thread training step. One loop that
// loads p, g, m, v (and v_max) once and stores p, m, v once moves ~7 instead. The
// arithmetic is torch 1.13's, operation for operation, in the parameter's dtype; only the
// rounding of fused multiply-adds may differ (≤ a few ulp per step, tests/unit/strategy).
#include <ATen/core/Tensor.h>

namespace mpitrain::optim::detail {

struct AdamStep {
  double lr, beta1, beta2, eps, weight_decay;
  int64_t step;       // after the increment: the bias corrections use it
  bool amsgrad;
  bool decoupled;     // AdamW: p *= 1 - lr * weight_decay; Adam: g += weight_decay * p
};

// True where the fused pass applies: dense float/double CPU tensors laid out alike
// (same sizes and strides, so element i of each is at the same offset).
bool fused_adam_applies(const at::Tensor& p, const at::Tensor& grad, const at::Tensor& exp_avg,
                        const at::Tensor& exp_avg_sq, const at::Tensor* max_exp_avg_sq);

// p, exp_avg, exp_avg_sq (and max_exp_avg_sq when amsgrad) updated in place.
void fused_adam_update(at::Tensor& p, const at::Tensor& grad, at::Tensor& exp_avg, at::Tensor& exp_avg_sq,
                       at::Tensor* max_exp_avg_sq, const AdamStep& s);

}  // namespace mpitrain::optim::detail
