#include "mpitrain/strategy/optim/fused_adam.hpp"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <cmath>

namespace mpitrain::optim::detail {

namespace {

enum class Decay { kNone, kL2, kDecoupled };  // no weight decay, Adam's (into g), AdamW's (of p)

// The update of elements [begin, end). Scalars are rounded to T as torch's kernels round a
// C++ scalar for a T tensor; each line is one of torch's ops (named on the right).
template <typename T>
struct Kernel {
  T* p;
  const T* g;
  T* m;
  T* v;
  T* vmax;  // null unless amsgrad
  T decay, wd, beta1, one_minus_beta1, beta2, one_minus_beta2, sqrt_bc2, eps, step_size;
  Decay kind;

  void operator()(int64_t begin, int64_t end) const {
    switch (kind) {
      case Decay::kNone: return amsgrad_or_not<Decay::kNone>(begin, end);
      case Decay::kL2: return amsgrad_or_not<Decay::kL2>(begin, end);
      case Decay::kDecoupled: return amsgrad_or_not<Decay::kDecoupled>(begin, end);
    }
  }

  template <Decay kDecay>
  void amsgrad_or_not(int64_t begin, int64_t end) const {
    if (vmax)
      run<kDecay, true>(begin, end);
    else
      run<kDecay, false>(begin, end);
  }

  // Local restrict pointers (not members) are what lets the compiler vectorise the loop;
  // the template flags keep its body branch-free.
  template <Decay kDecay, bool kAmsgrad>
  void run(int64_t begin, int64_t end) const {
    T* __restrict pp = p;
    const T* __restrict gp = g;
    T* __restrict mp = m;
    T* __restrict vp = v;
    T* __restrict xp = vmax;
    for (int64_t i = begin; i < end; ++i) {
      T param = pp[i];
      if (kDecay == Decay::kDecoupled) param = param * decay;     // p.mul_(1 - lr*wd)
      T grad = gp[i];
      if (kDecay == Decay::kL2) grad = grad + wd * param;         // grad.add(p, wd)
      const T mi = mp[i] * beta1 + one_minus_beta1 * grad;        // exp_avg.mul_(b1).add_(g, 1-b1)
      const T vi = vp[i] * beta2 + one_minus_beta2 * grad * grad;  // exp_avg_sq.mul_(b2).addcmul_(g, g, 1-b2)
      mp[i] = mi;
      vp[i] = vi;
      T second = vi;
      if (kAmsgrad) second = xp[i] = std::max(xp[i], vi);         // max_out(vmax, v, vmax)
      const T denom = std::sqrt(second) / sqrt_bc2 + eps;         // sqrt / sqrt(bc2) + eps
      pp[i] = param + step_size * mi / denom;                     // p.addcdiv_(m, denom, -lr/bc1)
    }
  }
};

template <typename T>
void update(at::Tensor& p, const at::Tensor& grad, at::Tensor& exp_avg, at::Tensor& exp_avg_sq,
            at::Tensor* max_exp_avg_sq, const AdamStep& s) {
  const double bc1 = 1 - std::pow(s.beta1, s.step);
  const double bc2 = 1 - std::pow(s.beta2, s.step);
  const Kernel<T> k{p.data_ptr<T>(),
                    grad.data_ptr<T>(),
                    exp_avg.data_ptr<T>(),
                    exp_avg_sq.data_ptr<T>(),
                    s.amsgrad ? max_exp_avg_sq->data_ptr<T>() : nullptr,
                    static_cast<T>(1 - s.lr * s.weight_decay),
                    static_cast<T>(s.weight_decay),
                    static_cast<T>(s.beta1),
                    static_cast<T>(1 - s.beta1),
                    static_cast<T>(s.beta2),
                    static_cast<T>(1 - s.beta2),
                    static_cast<T>(std::sqrt(bc2)),
                    static_cast<T>(s.eps),
                    static_cast<T>(-s.lr / bc1),
                    s.weight_decay == 0 ? Decay::kNone : s.decoupled ? Decay::kDecoupled : Decay::kL2};
  // Chunks of 32 k elements: big enough to amortise a task, small enough that ResNet-18's
  // larger layers spread over every intra-op thread, as torch's own element-wise ops do.
  at::parallel_for(0, p.numel(), 32768, k);
}

bool laid_out_like(const at::Tensor& t, const at::Tensor& p) {
  return t.defined() && t.device() == p.device() && t.scalar_type() == p.scalar_type() && t.sizes() == p.sizes() &&
         t.strides() == p.strides() && !t.is_sparse();
}

}  // namespace

bool fused_adam_applies(const at::Tensor& p, const at::Tensor& grad, const at::Tensor& exp_avg,
                        const at::Tensor& exp_avg_sq, const at::Tensor* max_exp_avg_sq) {
  if (!p.device().is_cpu() || p.is_sparse() || !p.is_non_overlapping_and_dense()) return false;
  if (p.scalar_type() != at::kFloat && p.scalar_type() != at::kDouble) return false;
  if (!laid_out_like(grad, p) || !laid_out_like(exp_avg, p) || !laid_out_like(exp_avg_sq, p)) return false;
  return max_exp_avg_sq == nullptr || laid_out_like(*max_exp_avg_sq, p);
}

void fused_adam_update(at::Tensor& p, const at::Tensor& grad, at::Tensor& exp_avg, at::Tensor& exp_avg_sq,
                       at::Tensor* max_exp_avg_sq, const AdamStep& s) {
  // Named in torch's profiler as its own ops are, so a profile of a step still shows where
  // the optimizer's time goes.
  RECORD_FUNCTION("mpitrain::fused_adam", std::vector<c10::IValue>());
  if (p.scalar_type() == at::kDouble)
    update<double>(p, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, s);
  else
    update<float>(p, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, s);
}

}  // namespace mpitrain::optim::detail
