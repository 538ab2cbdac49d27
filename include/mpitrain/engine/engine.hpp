// Engine (DESIGN §3): one background thread owns every collective during training; other threads
// only submit work and wait on handles, so MPI needs no more than MPI_THREAD_SERIALIZED and
// reductions run while backward goes on.
//
// Two kinds of work:
// - FIFO operations (`enqueue`, raw `allreduce`): run in the order each rank enqueues them, so
//   every rank must enqueue the same sequence. DDP's buckets, the Trainer's agreements.
// - Named collectives (`allreduce_async("grad.fc.weight", t)`, ...), in Coordinated mode: ranks may
//   submit them in any order. Each cycle the ranks agree on which names are ready everywhere (rank
//   0 checks that every rank asked for the same dtype/shape/op on first sight; after that a
//   response cache lets one small allreduce decide), fuse them, and reduce once. A mismatch is an
//   error raised from the handle on every rank; a tensor some rank never submits is named by the
//   stall inspector. As Horovod's core does, with the controller (src/engine/coordinator.*)
//   separate from the data movement (src/engine/collective_ops.*).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "mpitrain/comm/communicator.hpp"
#include "mpitrain/engine/engine_options.hpp"

namespace mpitrain {

namespace detail {
struct Entry;
}

/// Horovod's prescale/postscale factors: the input is multiplied by `prescale` before the reduction,
/// the result by `postscale` after it (Sum and Avg only).
struct ScaleFactors {
  double prescale = 1.0;
  double postscale = 1.0;
};

/// Counters of one Engine (monotonic; read at any time).
struct EngineStats {
  int64_t cycles = 0;             ///< agreement rounds (each one small allreduce)
  int64_t negotiations = 0;       ///< cycles that needed a rank-0 round trip (a name not yet agreed)
  int64_t cache_hits = 0;         ///< named tensors agreed through the response cache
  int64_t cache_misses = 0;       ///< named tensors agreed by rank 0
  int64_t tensors = 0;            ///< named tensors completed
  int64_t collectives = 0;        ///< data collectives issued for them (fewer than tensors: fusion)
  int64_t fused_bytes = 0;        ///< bytes that went through the fusion buffer
};

class Engine {
 public:
  /// A submitted operation; completion is observed through its Handle. Copyable.
  class Handle {
   public:
    Handle() = default;  ///< an already completed operation
    /// Blocks until done; rethrows the operation's failure (CommError, ArgumentError on mismatch).
    void wait();
    bool done() const;
    /// After wait(): allgather's gathered tensor, or the (in-place) reduced tensor.
    at::Tensor output() const;
    /// After wait(): join's last rank to join.
    int64_t value() const;

    struct State;  // shared with the engine thread (src/engine/handle_state.hpp)

   private:
    friend class Engine;
    std::shared_ptr<State> state_;
  };

  /// Collective in Coordinated mode (allocates the fusion buffer in the Communicator's shared
  /// window); `options` are validated (ConfigError).
  explicit Engine(Communicator& comm, EngineOptions options = {});
  /// Waits for this rank's submitted work, then stops; in Coordinated mode the ranks stop together
  /// (work a peer still waits for fails there with a CommError, never hangs).
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  Communicator& comm() { return comm_; }
  const EngineOptions& options() const { return options_; }
  EngineStats stats() const;

  // ---- FIFO operations ----
  /// Runs `op(comm)` on the engine thread, after everything enqueued before it.
  Handle enqueue(std::function<void(Communicator&)> op);
  /// Convenience: an in-place allreduce on the engine thread.
  Handle allreduce(void* buf, int64_t count, DType dtype, ReduceOp op);
  /// Waits for every FIFO operation enqueued so far (in Coordinated mode: collective).
  void synchronize();
  /// Collective (a FIFO operation): a zero-filled host tensor in the Communicator's node-shared
  /// window, at the same offset on every rank, so that a named allreduce of it alone is zero-copy
  /// (peers reduce straight out of each other's memory). Private memory where the backend has no
  /// window. Every rank must ask for the same shape and dtype.
  at::Tensor shared_tensor(const std::vector<int64_t>& shape, c10::ScalarType dtype);

  // ---- named collectives (Coordinated mode). Names are unique among this rank's operations in
  // flight; tensors contiguous, defined, of a Communicator dtype, and untouched until done. ----
  /// In place. Avg divides by the ranks that have not joined.
  Handle allreduce_async(const std::string& name, at::Tensor tensor, ReduceOp op = ReduceOp::Avg,
                         ScaleFactors scale = {});
  /// All reduced in one fused collective (ready together, never split across cycles).
  Handle grouped_allreduce_async(const std::vector<std::string>& names, const std::vector<at::Tensor>& tensors,
                                 ReduceOp op = ReduceOp::Avg, ScaleFactors scale = {});
  /// Dimension 0 may differ per rank; output() is the concatenation in rank order.
  Handle allgather_async(const std::string& name, at::Tensor tensor);
  /// In place: rank `root`'s values everywhere.
  Handle broadcast_async(const std::string& name, at::Tensor tensor, int root);
  /// This rank is out of data: it contributes zeros to the others' allreduces (and is left out of
  /// Avg's divisor) until every rank has joined; value() is the last rank to join.
  Handle join_async();

  void allreduce(const std::string& name, at::Tensor tensor, ReduceOp op = ReduceOp::Avg, ScaleFactors scale = {});
  at::Tensor allgather(const std::string& name, at::Tensor tensor);
  void broadcast(const std::string& name, at::Tensor tensor, int root);
  /// Blocks until every rank has joined; returns the last rank to join.
  int join();

  struct Impl;  // src/engine/engine_impl.hpp

 private:
  Handle grouped_submit(const std::vector<std::string>& names, const std::vector<at::Tensor>& tensors, ReduceOp op,
                        ScaleFactors scale, bool grouped);
  /// Hands `entries` (one handle for all of them) to the engine thread.
  Handle submit(std::vector<detail::Entry> entries);

  Communicator& comm_;
  EngineOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mpitrain
