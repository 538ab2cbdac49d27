// The Communicator of the GPU path: device buffers go to the NCCL backend, host buffers to the MPI
// backend. Training keeps its control-plane collectives on the host (metric sums, failure
// agreement, RNG state, strings) while gradients in device memory go through NCCL; either backend
// alone would refuse one of the two.
//
// Each call is routed by its buffers (cudaPointerGetAttributes): device or managed memory -> NCCL,
// anything else (pageable, pinned, a SharedBuffer) -> MPI. Every rank passes the same kind of
// memory to the same call, so every rank picks the same backend. A call whose send and receive
// buffers lie on different sides is an ArgumentError. Work handles are the backends' own; barriers
// and allocate_shared go to MPI. The deadline is each backend's (CommOptions::timeout when they
// were built): set_timeout on this object does not reach them.
//
// Built only with MPITRAIN_WITH_NCCL.
#pragma once
#include <memory>

#include "mpitrain/comm/nccl_communicator.hpp"

namespace mpitrain {

class DeviceRoutingCommunicator final : public Communicator {
 public:
  /// Both over the same ranks (e.g. an MpiCommunicator and a NcclCommunicator of one world).
  DeviceRoutingCommunicator(std::unique_ptr<Communicator> host, std::unique_ptr<NcclCommunicator> device);

  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }
  int local_rank() const override { return host_->local_rank(); }
  int local_size() const override { return host_->local_size(); }
  const char* backend() const override { return "nccl"; }
  Communicator& host() { return *host_; }
  NcclCommunicator& device() { return *device_; }

  Work iallreduce(const void* send, void* recv, int64_t count, DType dtype, ReduceOp op) override;
  Work ibroadcast(void* buf, int64_t count, DType dtype, int root) override;
  Work iallgather(const void* send, void* recv, int64_t count, DType dtype) override;
  Work iallgatherv(const void* send, void* recv, const std::vector<int64_t>& counts, DType dtype) override;
  Work ireduce_scatter(const void* send, void* recv, int64_t recv_count, DType dtype, ReduceOp op) override;
  Work ibarrier() override;
  void allreduce(const void* send, void* recv, int64_t count, DType dtype, ReduceOp op) override;
  /// The host backend's node-shared window (host memory: its collectives go to MPI).
  SharedBuffer allocate_shared(size_t bytes) override;

 protected:
  // Never reached: every Work this object returns belongs to one of the backends.
  bool test_task(detail::Task& task) override;
  void wait_task(detail::Task& task) override;

 private:
  Communicator& route(const char* what, const void* send, const void* recv);
  std::unique_ptr<Communicator> host_;
  std::unique_ptr<NcclCommunicator> device_;
};

}  // namespace mpitrain
