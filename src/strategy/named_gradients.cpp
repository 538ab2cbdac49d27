#include "named_gradients.hpp"

#include <torch/cuda.h>

namespace mpitrain::detail {

NamedGradients::NamedGradients(std::vector<std::pair<std::string, torch::Tensor>> params, Engine& engine,
                               GradCompression compression, const std::string& prefix, int passes_per_step)
    : engine_(engine), compression_(compression), prefix_(prefix), passes_per_step_(passes_per_step) {
  if (passes_per_step < 1)
    throw ConfigError("backward_passes_per_step must be at least 1 (got " + std::to_string(passes_per_step) + ")");
  for (auto& [name, t] : params) {
    Param p;
    p.name = name;
    p.tensor = t;
    params_.push_back(std::move(p));
  }
  place_grads_in_shared_window();
  for (size_t i = 0; i < params_.size(); ++i)
    hooks_.push_back(std::make_unique<GradReadyHook>(params_[i].tensor, [this, i] { ready(i); }));
}

// Host gradients live in the Communicator's node-shared window, at the same offsets on every rank
// (PyTorch's gradient_as_bucket_view, as DDP does): a gradient reduced alone is then reduced
// zero-copy. Autograd accumulates into an existing .grad in place, and zero_grad zeros in place.
void NamedGradients::place_grads_in_shared_window() {
  constexpr size_t kAlign = 64;
  size_t total = 0;
  for (const auto& p : params_) {
    if (!p.tensor.device().is_cpu()) return;  // device gradients stay where autograd puts them
    total += (size_t(p.tensor.numel()) * p.tensor.element_size() + kAlign - 1) / kAlign * kAlign;
  }
  if (total == 0) return;
  torch::Tensor window = engine_.shared_tensor({int64_t(total)}, torch::kByte);  // collective
  char* base = static_cast<char*>(window.data_ptr());
  size_t offset = 0;
  torch::NoGradGuard no_grad;
  for (auto& p : params_) {
    const size_t bytes = size_t(p.tensor.numel()) * p.tensor.element_size();
    torch::Tensor view = torch::from_blob(base + offset, p.tensor.sizes(), [window](void*) {},
                                          torch::TensorOptions().dtype(p.tensor.scalar_type()));
    if (p.tensor.grad().defined()) view.copy_(p.tensor.grad());
    p.tensor.mutable_grad() = view;
    offset += (bytes + kAlign - 1) / kAlign * kAlign;
  }
}

NamedGradients::~NamedGradients() {
  hooks_.clear();
  for (auto& p : params_) {
    try {
      if (p.in_flight) p.handle.wait();  // the engine must not write into memory that goes away
    } catch (...) {
    }
    // Parameters must not keep views into a window that goes away with the engine.
    if (p.tensor.grad().defined()) p.tensor.mutable_grad() = p.tensor.grad().clone();
  }
}

void NamedGradients::set_enabled(bool on) {
  std::lock_guard<std::mutex> lock(m_);
  enabled_ = on;
}

void NamedGradients::ready(size_t i) {
  std::lock_guard<std::mutex> lock(m_);
  Param& p = params_[i];
  if (!enabled_ || p.in_flight) return;
  if (++p.passes >= passes_per_step_) submit(p);
}

void NamedGradients::submit(Param& p) {
  torch::NoGradGuard no_grad;
  torch::Tensor& grad = p.tensor.mutable_grad();
  if (!grad.defined()) grad = torch::zeros_like(p.tensor);  // not used in this step: contributes zeros
  // The communicator's stream (NCCL) must not read the gradient before the compute stream wrote it.
  if (grad.is_cuda()) torch::cuda::synchronize();
  switch (compression_) {
    case GradCompression::None: p.wire = grad.is_contiguous() ? grad : grad.contiguous(); break;
    case GradCompression::Fp16: p.wire = grad.to(torch::kHalf).contiguous(); break;
    case GradCompression::Bf16: p.wire = grad.to(torch::kBFloat16).contiguous(); break;
  }
  p.handle = engine_.allreduce_async(prefix_ + p.name, p.wire, ReduceOp::Avg);
  p.in_flight = true;
  ++submitted_;
}

void NamedGradients::synchronize() {
  {
    std::lock_guard<std::mutex> lock(m_);
    for (auto& p : params_)
      if (!p.in_flight) submit(p);
  }
  std::exception_ptr first;
  torch::NoGradGuard no_grad;
  for (auto& p : params_) {
    try {
      p.handle.wait();
      torch::Tensor& grad = p.tensor.mutable_grad();
      if (!p.wire.is_same(grad)) grad.copy_(p.wire);
    } catch (...) {
      if (!first) first = std::current_exception();
    }
    p.in_flight = false;
    p.passes = 0;
    p.wire = torch::Tensor();
    p.handle = {};
  }
  if (first) std::rethrow_exception(first);
}

}  // namespace mpitrain::detail
