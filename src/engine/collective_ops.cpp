#include "collective_ops.hpp"

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/mul.h>
#include <ATen/ops/zeros.h>

#include <cstring>

#include "mpitrain/comm/tensor_collectives.hpp"

namespace mpitrain::detail {

namespace {
using Clock = std::chrono::steady_clock;

c10::TensorOptions options_of(const Request& r) {
  c10::TensorOptions o = c10::TensorOptions().dtype(to_scalar_type(r.dtype));
  return r.device < 0 ? o.device(c10::kCPU) : o.device(c10::Device(c10::kCUDA, c10::DeviceIndex(r.device)));
}

// Tensors from this size on are reduced alone, in place: the copies in and out of the fusion buffer
// cost more than the per-collective overhead they save (measured with mpitrain-bench engine here:
// 10 x 4 MiB fused took 1.5x as long as in place one by one). Grouped tensors are fused whatever
// their size.
constexpr size_t kFuseBelowBytes = size_t(1) << 20;

// Allreduces that can share one collective.
bool fusable(const Request& a, const Request& b) {
  const bool small = a.bytes() < kFuseBelowBytes && b.bytes() < kFuseBelowBytes;
  const bool grouped = !a.group.empty() && a.group == b.group;
  return a.type == OpType::Allreduce && b.type == OpType::Allreduce && a.dtype == b.dtype && a.op == b.op &&
         a.device == b.device && a.prescale == b.prescale && a.postscale == b.postscale && (small || grouped);
}

const char* collective_phase(OpType t) {
  switch (t) {
    case OpType::Allreduce: return "ALLREDUCE";
    case OpType::Allgather: return "ALLGATHER";
    case OpType::Broadcast: return "BROADCAST";
    case OpType::Join: return "JOIN";
  }
  return "?";
}
}  // namespace

CollectiveOps::CollectiveOps(Communicator& comm, size_t fusion_threshold, Timeline* timeline)
    : comm_(comm), threshold_(fusion_threshold), timeline_(timeline) {}

at::Tensor CollectiveOps::input_or_zeros(const Job& j) const {
  return j.tensor.defined() ? j.tensor : at::zeros(j.resp.req.shape, options_of(j.resp.req));
}

// Lazily, and so collectively: every rank runs the same fused units at the same point.
char* CollectiveOps::fusion_buffer(int device) {
  if (device >= 0) {
    if (!device_.defined())
      device_ = at::empty({int64_t(threshold_)}, c10::TensorOptions().dtype(c10::kByte).device(c10::kCUDA, c10::DeviceIndex(device)));
    return static_cast<char*>(device_.data_ptr());
  }
  if (!shared_ && !host_.defined()) {
    try {
      shared_ = comm_.allocate_shared(threshold_);
    } catch (const CommError&) {  // no shared window (e.g. NCCL only): a private buffer, one copy more
      host_ = at::empty({int64_t(threshold_)}, c10::TensorOptions().dtype(c10::kByte));
    }
  }
  return shared_ ? static_cast<char*>(shared_.data()) : static_cast<char*>(host_.data_ptr());
}

CollectiveOps::Counts CollectiveOps::run(std::vector<Job>& jobs, int contributors) {
  Counts n;
  for (size_t i = 0; i < jobs.size();) {
    const Request& r = jobs[i].resp.req;
    if (r.type == OpType::Allreduce) {
      // The longest run of fusable tensors that fits the buffer (at least one tensor).
      size_t end = i + 1, bytes = r.bytes();
      while (end < jobs.size() && fusable(r, jobs[end].resp.req) && bytes + jobs[end].resp.req.bytes() <= threshold_)
        bytes += jobs[end++].resp.req.bytes();
      allreduce_unit(jobs, i, end, contributors, n);
      i = end;
      continue;
    }
    if (r.type == OpType::Broadcast) broadcast(jobs[i]);
    else allgather(jobs[i]);
    ++n.collectives;
    ++i;
  }
  return n;
}

void CollectiveOps::allreduce_unit(std::vector<Job>& jobs, size_t begin, size_t end, int contributors, Counts& n) {
  const Request& r = jobs[begin].resp.req;
  // With ranks joined, Avg is a Sum scaled by 1/contributors (joined ranks are left out of the
  // divisor); else the Communicator averages inside its reduction, saving a pass over the data.
  const bool native_avg = r.op == ReduceOp::Avg && contributors == comm_.size();
  const ReduceOp op = r.op == ReduceOp::Avg && !native_avg ? ReduceOp::Sum : r.op;
  const double post = r.op == ReduceOp::Avg && !native_avg ? r.postscale / contributors : r.postscale;
  const auto queued = Clock::now();
  ++n.collectives;
  if (end - begin == 1) {  // alone: reduced in place, no copies
    Job& j = jobs[begin];
    at::Tensor t = input_or_zeros(j);
    if (r.prescale != 1.0) t.mul_(r.prescale);
    const auto start = Clock::now();
    comm_.allreduce(t.data_ptr(), t.data_ptr(), t.numel(), r.dtype, op);
    const auto reduced = Clock::now();
    if (post != 1.0) t.mul_(post);
    if (timeline_) {
      timeline_->phase(r.name, "QUEUE", j.agreed, queued);
      timeline_->phase(r.name, "ALLREDUCE", start, reduced);
    }
    return;
  }
  char* buf = fusion_buffer(r.device);
  const size_t esize = dtype_size(r.dtype);
  const c10::TensorOptions opts = options_of(r);
  // Host memory without scaling is plain memcpy: an ATen call per small tensor costs more than
  // copying it (100 x 4 KiB: ~1 ms of dispatch against ~40 us of copies).
  const bool raw = r.device < 0 && r.prescale == 1.0 && post == 1.0;
  std::vector<at::Tensor> views;
  int64_t offset = 0;
  const auto copy_in = Clock::now();
  for (size_t k = begin; k < end; ++k) {
    const Job& j = jobs[k];
    const int64_t count = j.resp.req.numel();
    char* at_offset = buf + size_t(offset) * esize;
    offset += count;
    if (raw) {
      if (j.tensor.defined()) std::memcpy(at_offset, j.tensor.data_ptr(), size_t(count) * esize);
      else std::memset(at_offset, 0, size_t(count) * esize);
      continue;
    }
    at::Tensor view = at::from_blob(at_offset, {count}, opts);
    if (!j.tensor.defined()) view.zero_();
    else if (r.prescale != 1.0) at::mul_out(view, j.tensor.view({-1}), r.prescale);
    else view.copy_(j.tensor.view({-1}));
    views.push_back(view);
  }
  const auto start = Clock::now();
  comm_.allreduce(buf, buf, offset, r.dtype, op);
  const auto reduced = Clock::now();
  size_t at_offset = 0;
  for (size_t k = begin; k < end; ++k) {
    Job& j = jobs[k];
    const size_t bytes = size_t(j.resp.req.numel()) * esize;
    if (raw && j.tensor.defined()) std::memcpy(j.tensor.data_ptr(), buf + at_offset, bytes);
    at_offset += bytes;
    if (raw || !j.tensor.defined()) continue;
    at::Tensor flat = j.tensor.view({-1});
    if (post != 1.0) at::mul_out(flat, views[k - begin], post);
    else flat.copy_(views[k - begin]);
  }
  const auto copied = Clock::now();
  n.fused_bytes += offset * int64_t(esize);
  if (timeline_) {
    const std::string fused = "{\"fused_tensors\": " + std::to_string(end - begin) + ", \"fused_bytes\": " +
                              std::to_string(offset * int64_t(esize)) + "}";
    for (size_t k = begin; k < end; ++k) {
      const std::string& name = jobs[k].resp.req.name;
      timeline_->phase(name, "QUEUE", jobs[k].agreed, copy_in);
      timeline_->phase(name, "MEMCPY_IN_FUSION_BUFFER", copy_in, start);
      timeline_->phase(name, "ALLREDUCE", start, reduced, fused);
      timeline_->phase(name, "MEMCPY_OUT_FUSION_BUFFER", reduced, copied);
    }
  }
}

void CollectiveOps::broadcast(Job& j) {
  const Request& r = j.resp.req;
  at::Tensor t = input_or_zeros(j);
  const auto start = Clock::now();
  comm_.broadcast(t.data_ptr(), t.numel(), r.dtype, r.root);
  if (timeline_) {
    timeline_->phase(r.name, "QUEUE", j.agreed, start);
    timeline_->phase(r.name, collective_phase(r.type), start, Clock::now());
  }
}

void CollectiveOps::allgather(Job& j) {
  const Request& r = j.resp.req;
  int64_t row = 1;
  for (size_t d = 1; d < r.shape.size(); ++d) row *= r.shape[d];
  std::vector<int64_t> counts;
  int64_t rows = 0;
  for (int64_t d0 : j.resp.first_dims) {
    counts.push_back(d0 * row);
    rows += d0;
  }
  std::vector<int64_t> shape = r.shape;
  shape[0] = rows;
  j.output = at::empty(shape, options_of(r));
  const void* send = j.tensor.defined() ? j.tensor.data_ptr() : nullptr;
  const auto start = Clock::now();
  comm_.allgatherv(send, j.output.data_ptr(), counts, r.dtype);
  if (timeline_) {
    timeline_->phase(r.name, "QUEUE", j.agreed, start);
    timeline_->phase(r.name, collective_phase(r.type), start, Clock::now());
  }
}

}  // namespace mpitrain::detail
