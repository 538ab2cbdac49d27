// Reduce-scatter and allgather of the MPI backend as Tasks (see task.hpp, mpi_tasks.hpp).
// Inside one node they run through shared memory: a reduce-scatter moves each rank's input once
// into the node (or not at all when it already sits in a SharedBuffer) and each rank reduces
// only its own block, so it costs about half an allreduce of the same input; an allgather into
// a SharedBuffer copies each peer's block straight out of the peer's slot. Across nodes both go
// through MPI (MPI_Ireduce_scatter_block / MPI_Iallgather).
#pragma once
#include <vector>

#include "mpi_tasks.hpp"

namespace mpitrain::detail {

/// One node. Copy-in mode (`region` = the staging ring): chunk k holds elements [k*c, (k+1)*c)
/// of every rank's block, copied into this rank's slot; each rank reduces its own block's part
/// out of every slot into `recv`, pipelined against the next chunk's copy-in. Zero-copy mode
/// (`send` in `region` at `offset` of every slot): one step, no copy-in.
class ShmReduceScatterTask final : public Task {
 public:
  ShmReduceScatterTask(MpiContext& ctx, const CallInfo& info, const void* send, void* recv, ShmRegion& region,
                       size_t offset, bool zero_copy);
  bool progress() override;
  std::string waiting_for() const override;

 private:
  size_t position(uint64_t k) const;  // byte offset of chunk k's block 0 in a slot
  size_t chunk_elems(uint64_t k) const;

  MpiContext& ctx_;
  const char* send_;
  char* recv_;
  ShmRegion& region_;
  size_t offset_, esize_, chunk_, ring_;
  bool zero_copy_;
  uint64_t nchunks_, k_ = 0, idx_ = 0, base_ = 0, waiting_ = 0;
  int phase_ = 0;
};

/// One node, `recv` in a SharedBuffer at `offset` of every slot: this rank's block is put into
/// its own slot (unless it is there already), then every peer's block copied out of its slot.
class ShmAllgatherTask final : public Task {
 public:
  ShmAllgatherTask(MpiContext& ctx, const CallInfo& info, const void* send, void* recv, ShmRegion& region,
                   size_t offset)
      : Task(info), ctx_(ctx), send_(send), recv_(static_cast<char*>(recv)), region_(region), offset_(offset) {}
  bool progress() override;
  std::string waiting_for() const override;

 private:
  MpiContext& ctx_;
  const void* send_;
  char* recv_;
  ShmRegion& region_;
  size_t offset_;
  uint64_t idx_ = 0, waiting_ = 0;
  int phase_ = 0;
};

/// MPI_Ireduce_scatter_block over the world (several nodes, or UserBufferPath::ChunkedMpi).
/// bf16/fp16 travel as fp32; Avg is a sum divided at the end.
class MpiReduceScatterTask final : public Task {
 public:
  MpiReduceScatterTask(MpiContext& ctx, const CallInfo& info, const void* send, void* recv);
  ~MpiReduceScatterTask() override = default;  // an abandoned request is left to MPI
  bool issue() override;
  bool progress() override;
  bool drain() override;

 private:
  MpiContext& ctx_;
  CallCheck check_;
  const void* in_ = nullptr;
  void* out_ = nullptr;
  bool issued_ = false;
  void* recv_;
  std::vector<char> wide_in_, wide_out_;  // fp32 copies for bf16/fp16
  MPI_Request req_ = MPI_REQUEST_NULL;
};

}  // namespace mpitrain::detail
