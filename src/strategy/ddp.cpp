#include "mpitrain/strategy/ddp.hpp"

#include <torch/cuda.h>
#include <torch/torch.h>

#include <mutex>

#include "mpitrain/comm/tensor_collectives.hpp"
#include "mpitrain/detail/json_options.hpp"
#include "grad_ready_hook.hpp"
#include "mpitrain/strategy/registry.hpp"

namespace mpitrain {

namespace {
constexpr size_t kAlign = 64;  // bucket starts on a cache line: no false sharing between buckets
size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// Rank 0's values into `t`, on the engine thread; a tensor in another layout (channels-last)
// travels as a contiguous copy, so every rank reads the wire in the same element order.
void broadcast_from_root(Engine& engine, torch::Tensor t) {
  engine.enqueue([t](Communicator& c) mutable {
    torch::Tensor wire = t.is_contiguous() ? t : t.contiguous();
    broadcast(c, wire, 0);
    if (!wire.is_same(t)) t.copy_(wire);
  });
}
}  // namespace

struct DDP::Impl {
  struct Bucket {
    size_t offset_bytes = 0;
    int64_t count = 0;
    DType dtype = DType::Float32;
    std::vector<size_t> params;  // indices into `params`
    size_t pending = 0;          // parameters whose gradient is not accumulated yet
    Engine::Handle handle;
    bool submitted = false;
  };

  DDPOptions opts;
  Engine* engine = nullptr;
  std::vector<torch::Tensor> params;
  std::vector<std::string> names;
  std::vector<size_t> bucket_of;
  std::vector<bool> ready;
  std::vector<Bucket> buckets;
  size_t next_submit = 0;
  bool sync = true;
  SharedBuffer shared;       // zero-copy fusion buffer (MPI backend, host memory)
  torch::Tensor private_buf; // device memory, or host memory when the backend has no shared window
  char* base = nullptr;
  size_t used_bytes = 0;     // of the fusion buffer, all buckets
  bool on_device = false;    // parameters (so gradients and buckets) on a CUDA device
  int64_t reductions = 0;
  std::vector<std::unique_ptr<detail::GradReadyHook>> hooks;  // .grad (a bucket view) final: mark_ready
  std::mutex m;  // hooks may run on autograd worker threads

  void mark_ready(size_t i) {
    std::lock_guard<std::mutex> lock(m);
    if (!sync || ready[i]) return;
    ready[i] = true;
    --buckets[bucket_of[i]].pending;
    submit_ready_in_order();
  }

  // Reductions are issued in bucket order on every rank, whatever order gradients arrive in.
  void submit_ready_in_order() {
    while (next_submit < buckets.size() && buckets[next_submit].pending == 0) {
      // The device's compute stream must have finished writing these gradients before the
      // communicator's own stream reads them (coarse: an event per bucket would overlap more).
      if (on_device) torch::cuda::synchronize();
      Bucket& b = buckets[next_submit++];
      ++reductions;
      b.handle = engine->allreduce(base + b.offset_bytes, b.count, b.dtype, ReduceOp::Avg);
      b.submitted = true;
    }
  }

  void reset_step() {
    for (auto& b : buckets) {
      b.pending = b.params.size();
      b.submitted = false;
      b.handle = {};
    }
    std::fill(ready.begin(), ready.end(), false);
    next_submit = 0;
  }
};

DDP::DDP(DDPOptions options) : impl_(std::make_unique<Impl>()) { impl_->opts = options; }

DDP::~DDP() {
  auto& im = *impl_;
  im.hooks.clear();
  // Parameters must not keep views into a buffer that is about to go away.
  for (auto& p : im.params)
    if (p.grad().defined()) p.mutable_grad() = p.grad().clone();
}

MPITRAIN_REGISTER_STRATEGY("ddp", [](const nlohmann::json& o) {
  return std::make_unique<DDP>(detail::options_from_json<DDPOptions>(o, "strategy 'ddp'"));
});

void DDP::setup(torch::nn::Module& model, torch::optim::Optimizer* optimizer, Engine& engine) {
  Strategy::setup(model, optimizer, engine);
  auto& im = *impl_;
  im.engine = &engine;
  torch::NoGradGuard no_grad;
  // 1. Same starting point everywhere: rank 0's parameters and buffers.
  for (auto& p : model.parameters()) broadcast_from_root(engine, p.data());
  for (auto& b : model.buffers()) broadcast_from_root(engine, b.detach());
  engine.synchronize();

  // 2. Buckets in reverse registration order (roughly the order backward produces gradients).
  for (auto& item : model.named_parameters())
    if (item.value().requires_grad()) {
      im.params.push_back(item.value());
      im.names.push_back(item.key());
    }
  std::vector<size_t> order(im.params.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = order.size() - 1 - i;
  im.bucket_of.assign(im.params.size(), 0);
  size_t offset = 0, cap = im.opts.first_bucket_bytes, filled = 0;
  for (size_t i : order) {
    const auto& p = im.params[i];
    // Any dense layout (contiguous, channels-last) fills numel() elements of its bucket slot exactly.
    if (!p.is_non_overlapping_and_dense())
      throw ArgumentError("DDP: parameter " + im.names[i] + " is not dense (a view or an overlapping tensor)");
    const DType dt = to_dtype(p.scalar_type());
    const size_t bytes = size_t(p.numel()) * dtype_size(dt);
    if (im.buckets.empty() || im.buckets.back().dtype != dt || (filled > 0 && filled + bytes > cap)) {
      if (!im.buckets.empty()) cap = im.opts.bucket_cap_bytes;
      offset = align_up(offset);
      Impl::Bucket b;
      b.offset_bytes = offset;
      b.dtype = dt;
      im.buckets.push_back(b);
      filled = 0;
    }
    auto& b = im.buckets.back();
    b.params.push_back(i);
    b.count += p.numel();
    im.bucket_of[i] = im.buckets.size() - 1;
    filled += bytes;
    offset += bytes;
  }
  const size_t total = align_up(offset);

  // 3. One fusion buffer: on the parameters' device (GPU), else in the node-shared window when
  // the backend has one (zero-copy), else private host memory.
  const torch::Device device = im.params.empty() ? torch::Device(torch::kCPU) : im.params[0].device();
  im.on_device = device.is_cuda();
  if (!im.on_device)
    engine.enqueue([&](Communicator& c) {
      try {
        im.shared = c.allocate_shared(std::max<size_t>(total, 64));
      } catch (const CommError&) {  // no window (e.g. NCCL): private memory below
      }
    }).wait();
  if (im.shared) {
    im.base = im.shared.as<char>();
    std::memset(im.base, 0, total);
  } else {
    im.private_buf = torch::zeros({int64_t(std::max<size_t>(total, 64))}, torch::TensorOptions(torch::kUInt8).device(device));
    im.base = static_cast<char*>(im.private_buf.data_ptr());
  }
  im.used_bytes = total;

  // 4. .grad = a view into the bucket; a post hook on each AccumulateGrad marks it ready.
  for (auto& b : im.buckets) {
    size_t elem_off = 0;
    for (size_t i : b.params) {
      auto& p = im.params[i];
      const size_t esize = dtype_size(b.dtype);
      // The parameter's own strides: a channels-last weight gets a channels-last gradient slot, so
      // AccumulateGrad adds into it layout to layout (no reorder) and the optimizer step matches.
      torch::Tensor view = torch::from_blob(im.base + b.offset_bytes + elem_off * esize, p.sizes(), p.strides(),
                                            torch::TensorOptions().dtype(p.scalar_type()).device(device));
      p.mutable_grad() = view;
      elem_off += size_t(p.numel());
    }
  }
  im.ready.assign(im.params.size(), false);
  for (size_t i = 0; i < im.params.size(); ++i)
    im.hooks.push_back(std::make_unique<detail::GradReadyHook>(im.params[i], [&im, i] { im.mark_ready(i); }));
  im.reset_step();
}

void DDP::before_backward(bool sync) {
  std::lock_guard<std::mutex> lock(impl_->m);
  impl_->sync = sync;
}

void DDP::after_backward() {
  auto& im = *impl_;
  if (!im.sync) return;
  {
    std::lock_guard<std::mutex> lock(im.m);
    for (size_t i = 0; i < im.params.size(); ++i) {
      if (im.ready[i]) continue;
      if (!im.opts.find_unused_parameters)
        throw ConfigError("DDP: parameter '" + im.names[i] +
                          "' received no gradient in this step; if the model does not use every parameter in "
                          "every step, enable find_unused_parameters");
      im.ready[i] = true;  // its bucket slot holds zeros (or what accumulated): reduce it as is
      --im.buckets[im.bucket_of[i]].pending;
    }
    im.submit_ready_in_order();
  }
  for (auto& b : im.buckets) b.handle.wait();
  std::lock_guard<std::mutex> lock(im.m);
  im.reset_step();
}

void DDP::zero_grad() {
  auto& im = *impl_;
  if (im.buckets.empty()) return;
  if (im.private_buf.defined()) im.private_buf.zero_();  // device memory: no memset from the host
  else std::memset(im.base, 0, im.used_bytes);
}

std::map<std::string, double> DDP::stats() const {
  return {{"buckets", double(impl_->buckets.size())},
          {"bucket_bytes", double(impl_->used_bytes)},
          {"reductions", double(impl_->reductions)}};
}

std::vector<int64_t> DDP::bucket_sizes() const {
  std::vector<int64_t> v;
  for (auto& b : impl_->buckets) v.push_back(b.count);
  return v;
}

}  // namespace mpitrain
