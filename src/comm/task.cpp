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
