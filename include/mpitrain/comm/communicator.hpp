// Communicator: collectives over contiguous buffers (DESIGN §3). Backends: MPI (CPU, shared
// memory inside a node) and NCCL (GPU). Every collective exists in a non-blocking form that
// returns a Work handle and a blocking form; every wait has a deadline, and expiry raises
// CommError naming the collective, its sequence number, the rank and the world size.
//
// A Communicator is used by one thread at a time (the engine's background thread, or the user's).
// Collectives must be called in the same order on every rank, as with MPI.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mpitrain/comm/types.hpp"
#include "mpitrain/errors.hpp"

namespace mpitrain {

class Communicator;
namespace detail {
class Task;
class ShmRegion;
}  // namespace detail

/// How allreduce treats buffers that the Communicator did not allocate itself.
enum class UserBufferPath : uint8_t {
  Auto,          ///< shared-memory copy-in inside a node, MPI between nodes (what measures fastest here)
  SharedMemory,  ///< always the shared-memory copy-in pipeline (hierarchical across nodes)
  ChunkedMpi,    ///< MPI_Iallreduce over the whole world in chunks of `mpi_chunk_bytes`
};

struct CommOptions {
  /// Deadline of every wait. Expiry raises CommError and poisons the Communicator.
  std::chrono::milliseconds timeout{std::chrono::seconds(300)};
  UserBufferPath user_path = UserBufferPath::Auto;
  /// Chunk size of the MPI path. Open MPI's allreduce page-faults a per-call temporary above
  /// 16 MiB (recipes/allreduce-here.md), so chunks stay well below that.
  size_t mpi_chunk_bytes = size_t(4) << 20;
  /// Per-rank staging area of the shared-memory copy-in path (a ring of pipeline chunks).
  size_t staging_bytes = size_t(1) << 20;  // fits L2 here: the ring stays in cache
  /// Pipeline granularity of the copy-in path: copy-in of chunk k overlaps peers' reduction.
  size_t pipeline_chunk_bytes = size_t(128) << 10;
  /// Messages up to this size go through one flag-synchronised exchange (latency path).
  size_t small_bytes = 4096;
  /// A rank on this node whose heartbeat (a thread of its own, every 250 ms) is older than this
  /// is stopped or hung, not slow: a wait fails at once naming it and its process state, instead
  /// of waiting out `timeout`. 0: off; otherwise at least 1 s. Same value on every rank.
  std::chrono::milliseconds liveness_timeout{std::chrono::seconds(30)};
  /// Collectives that go through MPI rather than shared memory (broadcast, allgather(v), barrier
  /// and reduce-scatter across nodes, the chunked-MPI allreduce) first agree on what was called
  /// (kind, count, dtype, op, root) with one small allreduce, so a mismatch is an error naming
  /// both ranks instead of a hang or corrupt data. Same value on every rank.
  bool verify_mpi_calls = true;
};

/// Handle of a non-blocking collective. Must not outlive its Communicator. Buffers passed to the
/// collective must stay valid and untouched until test() returned true or wait() returned.
class Work {
 public:
  Work() = default;  ///< an already completed operation
  /// Advances the operation without blocking; true once complete. Throws CommError on failure.
  bool test();
  /// Blocks until complete; throws CommError when the Communicator's deadline expires first.
  void wait();
  bool completed() const;

 private:
  friend class Communicator;
  Work(Communicator* comm, std::shared_ptr<detail::Task> task) : comm_(comm), task_(std::move(task)) {}
  Communicator* comm_ = nullptr;
  std::shared_ptr<detail::Task> task_;
};

/// Memory in a node-local shared window, allocated by Communicator::allocate_shared. Zero-copy
/// on one node: an in-place allreduce on a range of it, a reduce-scatter whose input lies in
/// it, an allgather whose output lies in it (peers read straight out of each other's slots).
/// Every rank must use the same offsets, and all ranks a SharedBuffer or none. Not copyable;
/// movable.
class SharedBuffer {
 public:
  SharedBuffer() = default;
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  template <class T>
  T* as() const {
    return static_cast<T*>(data_);
  }
  explicit operator bool() const { return data_ != nullptr; }

 private:
  friend class MpiCommunicator;
  SharedBuffer(std::shared_ptr<detail::ShmRegion> region, void* data, size_t bytes)
      : region_(std::move(region)), data_(data), bytes_(bytes) {}
  std::shared_ptr<detail::ShmRegion> region_;
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int local_rank() const = 0;   ///< rank among the processes of this node
  virtual int local_size() const = 0;
  virtual const char* backend() const = 0;  ///< "mpi" or "nccl"

  // ---- non-blocking collectives. `send == recv` means in place. Counts are elements. ----
  virtual Work iallreduce(const void* send, void* recv, int64_t count, DType dtype, ReduceOp op) = 0;
  virtual Work ibroadcast(void* buf, int64_t count, DType dtype, int root) = 0;
  /// recv holds size() * count elements, rank r's block at r * count.
  virtual Work iallgather(const void* send, void* recv, int64_t count, DType dtype) = 0;
  /// Rank r contributes counts[r] elements (every rank passes the same `counts`); blocks are
  /// packed in rank order in recv.
  virtual Work iallgatherv(const void* send, void* recv, const std::vector<int64_t>& counts, DType dtype) = 0;
  /// send holds size() * recv_count elements; rank r receives the reduction of block r.
  virtual Work ireduce_scatter(const void* send, void* recv, int64_t recv_count, DType dtype,
                               ReduceOp op) = 0;
  virtual Work ibarrier() = 0;

  // ---- blocking forms ----
  virtual void allreduce(const void* send, void* recv, int64_t count, DType dtype, ReduceOp op) {
    iallreduce(send, recv, count, dtype, op).wait();
  }
  void broadcast(void* buf, int64_t count, DType dtype, int root) { ibroadcast(buf, count, dtype, root).wait(); }
  void allgather(const void* send, void* recv, int64_t count, DType dtype) {
    iallgather(send, recv, count, dtype).wait();
  }
  void allgatherv(const void* send, void* recv, const std::vector<int64_t>& counts, DType dtype) {
    iallgatherv(send, recv, counts, dtype).wait();
  }
  void reduce_scatter(const void* send, void* recv, int64_t recv_count, DType dtype, ReduceOp op) {
    ireduce_scatter(send, recv, recv_count, dtype, op).wait();
  }
  void barrier() { ibarrier().wait(); }

  /// Collective: allocates `bytes` of node-shared memory for zero-copy allreduce (see
  /// SharedBuffer). Backends without it throw CommError.
  virtual SharedBuffer allocate_shared(size_t bytes) = 0;

  std::chrono::milliseconds timeout() const { return timeout_; }
  void set_timeout(std::chrono::milliseconds t) { timeout_ = t; }

 protected:
  explicit Communicator(std::chrono::milliseconds timeout) : timeout_(timeout) {}
  Work make_work(std::shared_ptr<detail::Task> task) { return Work(this, std::move(task)); }
  /// Backend hooks behind Work::test / Work::wait.
  virtual bool test_task(detail::Task& task) = 0;
  virtual void wait_task(detail::Task& task) = 0;

 private:
  friend class Work;
  std::chrono::milliseconds timeout_;
};

}  // namespace mpitrain
