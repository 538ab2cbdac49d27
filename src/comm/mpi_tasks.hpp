// The MPI backend's collectives as Tasks (see task.hpp). Tasks that touch shared memory start
// when they reach the head of the Communicator's queue and run strictly one after another; tasks
// that only call MPI start at issue time, so every rank calls MPI in program order.
#pragma once
#include <mpi.h>

#include <functional>
#include <memory>
#include <vector>

#include "call_check.hpp"
#include "mpitrain/comm/communicator.hpp"
#include "shm_channel.hpp"
#include "task.hpp"

namespace mpitrain::detail {

/// What every task of one MpiCommunicator shares.
struct MpiContext {
  MPI_Comm world = MPI_COMM_NULL;  // duplicate of the user's communicator
  MPI_Comm node = MPI_COMM_NULL;   // ranks of this node
  MPI_Comm cross = MPI_COMM_NULL;  // same local rank on every node; MPI_COMM_NULL on one node
  MPI_Comm check = MPI_COMM_NULL;  // CallCheck's (a duplicate of world); NULL: verify_mpi_calls off
  int rank = 0, size = 1, local_rank = 0, local_size = 1, nodes = 1;
  bool hierarchical = false;  // several nodes with the same number of ranks each
  CommOptions opts;
  std::unique_ptr<ShmChannel> chan;
  std::unique_ptr<ShmRegion> staging;
  // Pointer scratch reused by the (strictly sequential) shared-memory tasks. Buffers that MPI
  // writes into belong to the task instead: an abandoned task keeps them alive.
  std::vector<const void*> srcs;
  std::vector<void*> dsts;
};

MPI_Datatype mpi_type(DType t);  // bf16/fp16 map to MPI_UINT16_T: transport only
MPI_Op mpi_op(ReduceOp op);      // avg maps to MPI_SUM; the caller divides
void check_mpi(int rc, const char* what);

/// Inside a node, ranks compare descriptors in shared memory. Across nodes, peers' descriptors are not in shared memory: one MAX-allreduce of
/// (descriptor, -descriptor) over the cross-node communicator tells whether every node agrees.
/// A node whose ranks already disagree still takes part (so peers on other nodes learn of it
/// instead of waiting out the deadline) and then reports its own, more precise, message.
class AgreementCheck {
 public:
  /// Call after the shared-memory phase: `local_error` is ShmChannel::peer_mismatch's verdict.
  /// Throws at once on one node; across nodes, starts the exchange.
  void start(const MpiContext& ctx, const CallInfo& info, std::string local_error);
  /// True once every node agreed; throws CommError otherwise.
  bool done(const MpiContext& ctx, const CallInfo& info);
  bool pending() const { return req_ != MPI_REQUEST_NULL; }
  bool drain();

 private:
  int64_t words_[6] = {};
  MPI_Request req_ = MPI_REQUEST_NULL;
  std::string local_error_;
};

/// Small messages: one flag-synchronised exchange through the control slots' payload area;
/// across nodes, one MPI allreduce of the node's result per local rank. count 0 = barrier.
class SmallAllreduceTask final : public Task {
 public:
  SmallAllreduceTask(MpiContext& ctx, const CallInfo& info, const void* send, void* recv)
      : Task(info), ctx_(ctx), send_(send), recv_(recv) {}
  bool progress() override;
  bool drain() override;
  std::string waiting_for() const override;

 private:
  MpiContext& ctx_;
  const void* send_;
  void* recv_;
  int phase_ = 0;
  uint64_t idx_ = 0, target_ = 0;
  MPI_Request req_ = MPI_REQUEST_NULL;
  AgreementCheck check_;
  std::vector<char> acc_;  // node result on its way across nodes
};

/// Large messages inside a node (and hierarchically across nodes). Copy-in mode (send != null):
/// chunks of the user buffer go through a ring in this rank's staging slot, pipelined so the
/// copy-in of chunk k overlaps peers' reduction of chunk k-1. Zero-copy mode (send == null):
/// `region` holds the data at `offset` in every rank's slot; each rank reduces its slice straight
/// out of all slots and writes the result into all of them.
class PipelinedAllreduceTask final : public Task {
 public:
  PipelinedAllreduceTask(MpiContext& ctx, const CallInfo& info, const void* send, void* recv, ShmRegion& region,
                         size_t offset);
  bool progress() override;
  bool drain() override;
  std::string waiting_for() const override;

 private:
  size_t chunk_offset(uint64_t k) const;
  size_t chunk_elems(uint64_t k) const;
  void copy_out(uint64_t k);
  bool reduce_chunk();  // false while the cross-node MPI step is pending

  MpiContext& ctx_;
  const char* send_;
  char* recv_;
  ShmRegion& region_;
  size_t offset_, esize_, chunk_, ring_;
  uint64_t nchunks_, k_ = 0, idx_ = 0, base_ = 0, waiting_ = 0;
  int phase_ = 0;
  MPI_Request req_ = MPI_REQUEST_NULL;
  size_t slice_begin_ = 0, slice_len_ = 0;
  AgreementCheck check_;
  std::vector<char> acc_;  // this rank's slice of the node result on its way across nodes
};

/// MPI_Iallreduce over the world in chunks (all issued at once, after the CallCheck). bf16/fp16
/// travel as fp32.
class ChunkedMpiAllreduceTask final : public Task {
 public:
  ChunkedMpiAllreduceTask(MpiContext& ctx, const CallInfo& info, const void* send, void* recv);
  bool issue() override;
  bool progress() override;
  bool drain() override;

 private:
  MpiContext& ctx_;
  CallCheck check_;
  bool issued_ = false;
  void* recv_;
  void* buf_;
  std::vector<char> wide_;  // fp32 copy for bf16/fp16
  std::vector<MPI_Request> reqs_;
};

/// One MPI request (broadcast, allgather(v), barrier across nodes), started by `start` once the
/// CallCheck agreed on `check_count` and `check_extra`. `args` keeps integer arrays the call
/// reads until completion (allgatherv's counts and displacements).
class MpiRequestTask final : public Task {
 public:
  using Start = std::function<void(MPI_Request* request, const int* args)>;
  MpiRequestTask(const MpiContext& ctx, const CallInfo& info, Start start, std::vector<int> args = {},
                 int64_t check_count = -1, uint64_t check_extra = 0);
  ~MpiRequestTask() override;
  bool issue() override;
  bool progress() override;
  bool drain() override;

 private:
  MPI_Request req_ = MPI_REQUEST_NULL;
  std::vector<int> args_;
  Start start_;
  CallCheck check_;
  bool issued_ = false;
};

}  // namespace mpitrain::detail
