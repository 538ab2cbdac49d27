// NCCL backend of the Communicator (GPU buffers, DESIGN §3). One NCCL communicator per MPI
// communicator (the unique id travels over MPI), one CUDA device per rank (local rank modulo the
// visible devices) and the backend's own non-blocking CUDA stream. Collectives are enqueued on that
// stream and complete when a CUDA event recorded after them fires; every wait polls against the
// deadline (CommOptions::timeout) and aborts the NCCL communicator on expiry, so a dead or diverged
// peer becomes a CommError naming the collective, never a hang.
//
// Ordering with the caller's work: collectives do not wait for other streams. Buffers must hold
// their final values when the call is made (synchronise the producing stream, or make stream()
// wait on its event); results are visible to every stream once test() is true or wait() returned.
//
// Built only with MPITRAIN_WITH_NCCL (CMake found the CUDA toolkit and NCCL).
#pragma once
#include <mpi.h>

#include <memory>
#include <string>

#include "mpitrain/comm/communicator.hpp"

struct CUstream_st;  // cudaStream_t is CUstream_st*; keeps CUDA headers out of this header

namespace mpitrain {

/// The CUDA devices this process sees; 0 when there are none or the CUDA runtime fails, and then
/// `why` (when not null) says so, e.g. "cudaGetDeviceCount: no CUDA-capable device is detected".
int cuda_device_count(std::string* why);

class NcclCommunicator final : public Communicator {
 public:
  /// Collective over `comm`, which is duplicated (the caller keeps ownership of `comm`). MPI must be
  /// initialised. Throws CommError on every rank when any rank sees no CUDA device or fails to set
  /// up its device, stream or NCCL communicator. Of `options` only `timeout` applies.
  explicit NcclCommunicator(MPI_Comm comm = MPI_COMM_WORLD, CommOptions options = {});
  /// Waits (within the deadline) for work still in flight, then frees the NCCL communicator.
  /// Destroy it on every rank.
  ~NcclCommunicator() override;

  int rank() const override;
  int size() const override;
  int local_rank() const override;
  int local_size() const override;
  const char* backend() const override { return "nccl"; }
  const CommOptions& options() const;
  int device() const;           ///< the CUDA device this rank uses
  CUstream_st* stream() const;  ///< the stream collectives run on (a cudaStream_t)
  MPI_Comm mpi_comm() const;    ///< the duplicated communicator

  // All buffers are device (or managed) memory of device(); host buffers raise ArgumentError.
  Work iallreduce(const void* send, void* recv, int64_t count, DType dtype, ReduceOp op) override;
  Work ibroadcast(void* buf, int64_t count, DType dtype, int root) override;
  Work iallgather(const void* send, void* recv, int64_t count, DType dtype) override;
  Work iallgatherv(const void* send, void* recv, const std::vector<int64_t>& counts, DType dtype) override;
  Work ireduce_scatter(const void* send, void* recv, int64_t recv_count, DType dtype, ReduceOp op) override;
  Work ibarrier() override;

  /// Always throws CommError: NCCL reduces device memory in place, there is no host window.
  SharedBuffer allocate_shared(size_t bytes) override;

 protected:
  bool test_task(detail::Task& task) override;
  void wait_task(detail::Task& task) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mpitrain
