#pragma once
// The MPI communicator's queue of nonblocking collectives and its waiting policy. Tasks start and
// complete in issue order (program order on every rank). Waiting polls them until the awaited one
// completes, the deadline expires or a node peer stops beating. The first failure poisons the
// queue: every later call fails with that cause, and the queued tasks are kept (abandoned) until
// their MPI requests drain, since MPI may still write their buffers.
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <string>

#include "mpi_tasks.hpp"
#include "task.hpp"

namespace mpitrain::detail {

class TaskQueue {
 public:
  explicit TaskQueue(const MpiContext& ctx) : ctx_(ctx) {}
  /// More ranks than CPUs on the node: waiting yields the core at once instead of spinning.
  void set_oversubscribed(bool v) { oversubscribed_ = v; }

  bool empty() const { return queue_.empty(); }
  std::string where() const;  // "rank R (world size N)", for messages
  void check_usable() const;  // throws CommError with the first failure's cause
  [[noreturn]] void poison(const std::string& msg);
  CallInfo next_call(CollectiveKind kind, int64_t count, DType dtype, ReduceOp op = ReduceOp::Sum, int root = -1);

  /// Appends `t` and progresses the queue (a task at the head starts now: copy-in begins).
  void push(std::shared_ptr<Task> t);
  /// Starts verified MPI calls in queue order, then runs tasks in order until one cannot progress.
  void progress();
  /// Waits for a queued task.
  void wait(Task& t, std::chrono::milliseconds timeout) { drive(t, timeout, [this] { progress(); }); }
  /// Waits for a task that is not queued (the latency path): steps it alone.
  void wait_unqueued(Task& t, std::chrono::milliseconds timeout);
  /// At destruction: completes what was issued and never waited for, then gives abandoned MPI
  /// requests up to `grace` (a late peer may still complete them).
  void finish(std::chrono::milliseconds timeout, std::chrono::milliseconds grace);

 private:
  void drive(Task& t, std::chrono::milliseconds timeout, const std::function<void()>& advance);
  void check_liveness(Task& t, const std::function<void()>& advance);
  [[noreturn]] void timed_out(Task& awaited, std::chrono::milliseconds timeout);

  const MpiContext& ctx_;
  std::deque<std::shared_ptr<Task>> queue_;      // issue order == completion order
  std::deque<std::shared_ptr<Task>> abandoned_;  // queued when the communicator failed
  std::string failed_;                           // non-empty once poisoned
  uint64_t seq_ = 0;
  bool oversubscribed_ = false;
};

}  // namespace mpitrain::detail
