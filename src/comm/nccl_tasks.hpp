#pragma once
// The NCCL backend's pieces apart from its queue: CUDA/NCCL error text, type and reduction
// mapping, the per-thread device guard, and the task that one collective on the backend's stream
// becomes (mirrors mpi_tasks.hpp for the MPI backend).
#include <cuda_runtime.h>
#include <nccl.h>

#include <string>

#include "mpitrain/comm/communicator.hpp"
#include "task.hpp"

namespace mpitrain::detail {

std::string cuda_error(const char* call, cudaError_t e);
/// ncclGetErrorString is generic ("invalid usage"); the last error says what actually went wrong.
std::string nccl_error(const char* call, ncclResult_t r, ncclComm_t comm);
ncclDataType_t nccl_type(DType t);
/// bf16/fp16 sums: NCCL accumulates in the reduced type at every hop of its ring/tree, so large
/// worlds lose more precision than the MPI backend (which accumulates in fp32). An fp32-upcast
/// kernel around the call is future work.
ncclRedOp_t nccl_op(ReduceOp op);

// The current device is per thread and collectives may be issued from another thread than the
// constructor's (the engine's), so every entry point that creates or records CUDA objects sets it.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    if (cudaGetDevice(&prev_) != cudaSuccess) prev_ = -1;
    if (prev_ != device) cudaSetDevice(device);
  }
  ~DeviceGuard() {
    if (prev_ >= 0) cudaSetDevice(prev_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = -1;
};

// One collective (or one group of them) on the backend's stream: done when the event recorded
// after it has fired. Tasks complete in issue order, like the stream.
class NcclTask final : public Task {
 public:
  NcclTask(const CallInfo& info, ncclComm_t comm);
  ~NcclTask() override;
  cudaEvent_t event() const { return event_; }
  bool progress() override;
  std::string waiting_for() const override;

 private:
  ncclComm_t comm_;
  cudaEvent_t event_ = nullptr;
};

}  // namespace mpitrain::detail
