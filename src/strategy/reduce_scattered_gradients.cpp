#include "reduce_scattered_gradients.hpp"

#include <torch/cuda.h>

#include <cstring>

#include "mpitrain/comm/tensor_collectives.hpp"
#include "mpitrain/errors.hpp"

namespace mpitrain::detail {

ReduceScatteredGradients::ReduceScatteredGradients(std::vector<torch::Tensor> params, std::vector<std::string> names,
                                                   const ShardLayout& layout, Engine& engine,
                                                   bool find_unused_parameters)
    : params_(std::move(params)), names_(std::move(names)), layout_(layout), engine_(engine),
      find_unused_(find_unused_parameters) {
  const torch::TensorOptions opts = params_.empty() ? torch::TensorOptions() : params_[0].options();
  dtype_ = to_dtype(opts.dtype().toScalarType());
  esize_ = dtype_size(dtype_);
  int64_t largest = 1;
  for (const auto& b : layout_.buckets)
    if (!direct(b)) largest = std::max(largest, b.block * layout_.world);
  slot_bytes_ = (size_t(largest) * esize_ + 63) / 64 * 64;
  if (!opts.device().is_cuda())
    engine_.enqueue([&](Communicator& c) {
      try {
        shared_ = c.allocate_shared(2 * slot_bytes_);
      } catch (const CommError&) {  // no window: private memory below
      }
    }).wait();
  if (shared_) {
    staging_ = shared_.as<char>();
  } else {
    private_ = torch::zeros({int64_t(2 * slot_bytes_)}, torch::TensorOptions(torch::kUInt8).device(opts.device()));
    staging_ = static_cast<char*>(private_.data_ptr());
  }
  owned_ = torch::zeros({layout_.owned_total}, opts);
  handles_.resize(layout_.buckets.size());
  pending_.resize(layout_.buckets.size());
  ready_.assign(params_.size(), false);
  for (size_t b = 0; b < layout_.buckets.size(); ++b) pending_[b] = layout_.buckets[b].params.size();
  for (size_t i = 0; i < params_.size(); ++i)
    hooks_.push_back(std::make_unique<GradReadyHook>(params_[i], [this, i] { mark_ready(i); }));
}

ReduceScatteredGradients::~ReduceScatteredGradients() {
  hooks_.clear();
  for (auto& h : handles_) try {
      h.wait();
    } catch (const std::exception&) {  // the engine already reported it
    }
}

void ReduceScatteredGradients::before_backward(bool sync) {
  std::lock_guard<std::mutex> lock(m_);
  sync_ = sync;
}

void ReduceScatteredGradients::mark_ready(size_t i) {
  std::lock_guard<std::mutex> lock(m_);
  if (!sync_ || ready_[i]) return;
  ready_[i] = true;
  --pending_[layout_.bucket_of[i]];
  submit_ready_in_order();
}

void ReduceScatteredGradients::submit_ready_in_order() {
  while (next_submit_ < layout_.buckets.size() && pending_[next_submit_] == 0) submit(next_submit_++);
}

// Copies bucket b's gradients into staging slot b % 2 (once bucket b-2, its previous user, is
// reduced), releases them, and queues the reduce-scatter into this rank's owned block. A bucket
// that is one parameter larger than the bucket cap, whose size N divides, needs no staging.
void ReduceScatteredGradients::submit(size_t b) {
  const auto& bk = layout_.buckets[b];
  const DType dt = dtype_;
  const int64_t count = bk.block;
  char* out = static_cast<char*>(owned_.data_ptr()) + size_t(bk.owned_start) * esize_;
  ++reductions_;
  if (direct(bk)) {  // one parameter that splits evenly: reduce-scatter straight out of its .grad
    torch::Tensor& g = params_[bk.params[0]].mutable_grad();
    torch::Tensor send = g.defined() ? g.contiguous() : torch::zeros({layout_.numel[bk.params[0]]}, owned_.options());
    g = torch::Tensor();  // released once the reduction (which holds `send`) is done
    if (send.is_cuda()) torch::cuda::synchronize();
    handles_[b] = engine_.enqueue([send, out, count, dt](Communicator& c) {
      c.reduce_scatter(send.data_ptr(), out, count, dt, ReduceOp::Avg);
    });
    return;
  }
  if (b >= 2) handles_[b - 2].wait();
  char* slot = staging_ + (b % 2) * slot_bytes_;
  torch::NoGradGuard no_grad;
  const bool on_device = private_.defined() && private_.is_cuda();
  auto slot_view = [&](int64_t at, int64_t n) {
    return torch::from_blob(slot + size_t(at) * esize_, {n}, owned_.options());
  };
  for (size_t i : bk.params) {
    torch::Tensor dst = slot_view(layout_.offset[i] - bk.start, layout_.numel[i]);
    torch::Tensor& g = params_[i].mutable_grad();
    if (g.defined()) dst.copy_(g.reshape({-1}));
    else dst.zero_();  // unused parameter (find_unused_parameters)
    g = torch::Tensor();  // released: this rank keeps only its owned block
  }
  const int64_t padding = bk.block * layout_.world - bk.elems;
  if (padding) slot_view(bk.elems, padding).zero_();
  if (on_device) torch::cuda::synchronize();  // the copies must land before the communicator's stream reads
  handles_[b] = engine_.enqueue(
      [slot, out, count, dt](Communicator& c) { c.reduce_scatter(slot, out, count, dt, ReduceOp::Avg); });
}

void ReduceScatteredGradients::after_backward() {
  {
    std::lock_guard<std::mutex> lock(m_);
    if (!sync_) return;
    for (size_t i = 0; i < params_.size(); ++i) {
      if (ready_[i]) continue;
      if (!find_unused_)
        throw ConfigError("sharded: parameter '" + names_[i] +
                          "' received no gradient in this step; if the model does not use every parameter in "
                          "every step, enable find_unused_parameters");
      ready_[i] = true;
      --pending_[layout_.bucket_of[i]];
    }
    submit_ready_in_order();
  }
  for (auto& h : handles_) h.wait();
  std::lock_guard<std::mutex> lock(m_);
  for (size_t b = 0; b < pending_.size(); ++b) pending_[b] = layout_.buckets[b].params.size();
  std::fill(ready_.begin(), ready_.end(), false);
  next_submit_ = 0;
}

void ReduceScatteredGradients::zero_grad() {
  for (auto& p : params_) p.mutable_grad() = torch::Tensor();
}

double ReduceScatteredGradients::held_bytes() const {
  double bytes = double(owned_.numel()) * double(esize_);
  for (const auto& p : params_)
    if (p.grad().defined()) bytes += double(p.grad().numel()) * double(esize_);
  return bytes;
}

}  // namespace mpitrain::detail
