// MPI backend of the Communicator (CPU buffers). Inside a node, reductions run through shared
// memory (an MPI-3 shared window): a flag-synchronised exchange for small messages, a pipelined
// copy-in ring for user buffers, and zero-copy for SharedBuffers. Across nodes, each local rank
// reduces its slice of the node's data through MPI with its peers on other nodes, then shares
// the result inside the node (hierarchical). Reduce-scatter inside a node is native too (each
// rank reduces only its block; zero-copy from a SharedBuffer); across nodes it is
// MPI_Ireduce_scatter_block. Allgather into a SharedBuffer on one node copies out of the peers'
// slots; otherwise broadcast and allgather go through MPI directly.
// Every wait polls non-blocking calls against the deadline (CommOptions::timeout).
#pragma once
#include <mpi.h>

#include <memory>

#include "mpitrain/comm/communicator.hpp"

namespace mpitrain {

struct MpiTopologyOptions {
  /// 0: nodes are what MPI_Comm_split_type(SHARED) says. k > 0: treat every k consecutive ranks
  /// as one node (tests and benchmarks of the cross-node path on a single machine).
  int ranks_per_node = 0;
};

class MpiCommunicator final : public Communicator {
 public:
  /// Collective over `comm`, which is duplicated (the caller keeps ownership of `comm`).
  /// MPI must be initialised. The environment variable MPITRAIN_RANKS_PER_NODE overrides
  /// `topo.ranks_per_node` when set.
  explicit MpiCommunicator(MPI_Comm comm = MPI_COMM_WORLD, CommOptions options = {},
                           MpiTopologyOptions topo = {});
  /// Collective as well (frees shared windows): destroy it on every rank.
  ~MpiCommunicator() override;

  int rank() const override;
  int size() const override;
  int local_rank() const override;
  int local_size() const override;
  int node_count() const;
  const char* backend() const override { return "mpi"; }
  const CommOptions& options() const;

  Work iallreduce(const void* send, void* recv, int64_t count, DType dtype, ReduceOp op) override;
  Work ibroadcast(void* buf, int64_t count, DType dtype, int root) override;
  Work iallgather(const void* send, void* recv, int64_t count, DType dtype) override;
  Work iallgatherv(const void* send, void* recv, const std::vector<int64_t>& counts, DType dtype) override;
  Work ireduce_scatter(const void* send, void* recv, int64_t recv_count, DType dtype, ReduceOp op) override;
  Work ibarrier() override;
  /// Blocking allreduce; small messages take an allocation-free path when nothing is queued.
  void allreduce(const void* send, void* recv, int64_t count, DType dtype, ReduceOp op) override;

  /// Collective: `bytes` of node-shared memory per rank. The memory lives until the
  /// Communicator is destroyed (windows are freed collectively, in creation order).
  SharedBuffer allocate_shared(size_t bytes) override;

  /// The duplicated world communicator (for code that needs raw MPI alongside).
  MPI_Comm mpi_comm() const;

 protected:
  bool test_task(detail::Task& task) override;
  void wait_task(detail::Task& task) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mpitrain
