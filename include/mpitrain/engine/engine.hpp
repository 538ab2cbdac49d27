// Engine (DESIGN §3): one background thread owns every collective during training; other
// threads only enqueue work and wait on handles. So MPI needs no more than
// MPI_THREAD_SERIALIZED, and reductions run while backward goes on. (Negotiation of ready
// tensors across ranks, the Horovod-style coordinator, builds on this queue.)
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "mpitrain/comm/communicator.hpp"

namespace mpitrain {

class Engine {
 public:
  /// A queued piece of communication; completion is observed through its Handle.
  class Handle {
   public:
    Handle() = default;
    /// Blocks until done; rethrows the operation's failure (e.g. CommError).
    void wait();
    bool done() const;

   private:
    friend class Engine;
    struct State;
    std::shared_ptr<State> state_;
  };

  explicit Engine(Communicator& comm);
  ~Engine();  // drains the queue, then stops the thread
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  Communicator& comm() { return comm_; }
  /// Runs `op(comm)` on the engine thread, after everything enqueued before it (FIFO, so every
  /// rank issues collectives in the same order as it enqueues them).
  Handle enqueue(std::function<void(Communicator&)> op);
  /// Convenience: an in-place allreduce on the engine thread.
  Handle allreduce(void* buf, int64_t count, DType dtype, ReduceOp op);
  /// Waits for everything enqueued so far.
  void synchronize();

 private:
  void loop();
  struct Item {
    std::function<void(Communicator&)> op;
    std::shared_ptr<Handle::State> state;
  };
  Communicator& comm_;
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  bool stop_ = false;
  std::exception_ptr failed_;  // once an op failed, later ops fail with it too
  std::thread thread_;
};

}  // namespace mpitrain
