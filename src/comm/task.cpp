#include "task.hpp"

#include "mpitrain/comm/communicator.hpp"

namespace mpitrain {
namespace detail {

const char* collective_name(CollectiveKind k) {
  switch (k) {
    case CollectiveKind::Allreduce: return "allreduce";
    case CollectiveKind::Broadcast: return "broadcast";
    case CollectiveKind::Allgather: return "allgather";
    case CollectiveKind::Allgatherv: return "allgatherv";
    case CollectiveKind::ReduceScatter: return "reduce_scatter";
    case CollectiveKind::Barrier: return "barrier";
  }
  return "unknown-collective";
}

uint64_t pack_call(const CallInfo& c) {
  return uint64_t(c.kind) | uint64_t(c.dtype) << 8 | uint64_t(c.op) << 16 | uint64_t(uint32_t(c.root + 1)) << 32;
}

CallInfo unpack_call(uint64_t word, int64_t count, uint64_t seq) {
  CallInfo c;
  c.kind = CollectiveKind(word & 0xff);
  c.dtype = DType((word >> 8) & 0xff);
  c.op = ReduceOp((word >> 16) & 0xff);
  c.root = int(uint32_t(word >> 32)) - 1;
  c.count = count;
  c.seq = seq;
  return c;
}

std::string CallInfo::describe() const {
  std::string s = std::string(collective_name(kind)) + " #" + std::to_string(seq);
  if (kind == CollectiveKind::Barrier) return s;
  s += " (" + std::to_string(count) + " x " + dtype_name(dtype);
  if (kind == CollectiveKind::Allreduce || kind == CollectiveKind::ReduceScatter) s += std::string(" ") + reduce_op_name(op);
  if (kind == CollectiveKind::Broadcast) s += " from root " + std::to_string(root);
  return s + ")";
}

}  // namespace detail

// Work lives here: it is the only non-virtual glue between the handle and its backend.
bool Work::test() {
  if (!task_ || task_->done()) return true;
  return comm_->test_task(*task_);
}

void Work::wait() {
  if (!task_ || task_->done()) return;
  comm_->wait_task(*task_);
}

bool Work::completed() const { return !task_ || task_->done(); }

}  // namespace mpitrain
