// A collective in flight: a small state machine advanced by progress() without ever blocking.
// The Communicator owns the waiting (and so the deadline); tasks only say how far they got.
#pragma once
#include <cstdint>
#include <string>

#include "mpitrain/comm/types.hpp"

namespace mpitrain::detail {

enum class CollectiveKind : uint8_t { Allreduce = 1, Broadcast, Allgather, Allgatherv, ReduceScatter, Barrier };
const char* collective_name(CollectiveKind k);

/// What a collective was called with: enough to name it in errors and to compare it across ranks.
struct CallInfo {
  CollectiveKind kind = CollectiveKind::Barrier;
  uint64_t seq = 0;  ///< per-communicator sequence number of this collective
  int64_t count = 0;
  DType dtype = DType::Float32;
  ReduceOp op = ReduceOp::Sum;
  int root = -1;
  std::string describe() const;  ///< "allreduce #12 (1000 x float32 sum)"
};

/// kind | dtype | op | root in one word, for comparing calls across ranks.
uint64_t pack_call(const CallInfo& c);
CallInfo unpack_call(uint64_t word, int64_t count, uint64_t seq);

class Task {
 public:
  explicit Task(const CallInfo& info) : info_(info) {}
  virtual ~Task() = default;
  /// Advances as far as possible without blocking; returns true once complete. Throws CommError
  /// when peers disagree on the call.
  virtual bool progress() = 0;
  /// After a failure: only tests the MPI requests still outstanding (never touches shared memory
  /// or user buffers again); true once none is left.
  virtual bool drain() { return true; }
  /// Why the task cannot progress (for the timeout message), e.g. "waiting for ranks 1, 3".
  virtual std::string waiting_for() const { return {}; }
  /// Starts the data movement once the call is verified (CommOptions::verify_mpi_calls); false
  /// while the check is pending. The Communicator calls it for queued tasks in queue order, so
  /// every rank starts its MPI calls in program order.
  virtual bool issue() { return true; }
  const CallInfo& info() const { return info_; }
  bool done() const { return done_; }
  bool step() { return done_ || (done_ = progress()); }

 private:
  CallInfo info_;
  bool done_ = false;
};

}  // namespace mpitrain::detail
