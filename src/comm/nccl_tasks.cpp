#include "nccl_tasks.hpp"

namespace mpitrain::detail {

std::string cuda_error(const char* call, cudaError_t e) {
  return std::string(call) + ": " + cudaGetErrorString(e);
}

std::string nccl_error(const char* call, ncclResult_t r, ncclComm_t comm) {
  std::string s = std::string(call) + " failed: " + ncclGetErrorString(r);
  const char* last = ncclGetLastError(comm);
  if (last && *last) s += std::string(" (") + last + ")";
  return s;
}

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::Float32: return ncclFloat32;
    case DType::Float64: return ncclFloat64;
    case DType::BFloat16: return ncclBfloat16;
    case DType::Float16: return ncclFloat16;
    case DType::Int32: return ncclInt32;
    case DType::Int64: return ncclInt64;
    case DType::UInt8: return ncclUint8;
  }
  throw ArgumentError("unknown dtype code " + std::to_string(int(t)));
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return ncclSum;
    case ReduceOp::Avg: return ncclAvg;
    case ReduceOp::Min: return ncclMin;
    case ReduceOp::Max: return ncclMax;
    case ReduceOp::Prod: return ncclProd;
  }
  throw ArgumentError("unknown reduction code " + std::to_string(int(op)));
}

NcclTask::NcclTask(const CallInfo& info, ncclComm_t comm) : Task(info), comm_(comm) {
  cudaError_t e = cudaEventCreateWithFlags(&event_, cudaEventDisableTiming);
  if (e != cudaSuccess) {
    event_ = nullptr;
    throw CommError(info.describe() + ": " + cuda_error("cudaEventCreateWithFlags", e));
  }
}

NcclTask::~NcclTask() {
  if (event_) cudaEventDestroy(event_);
}

bool NcclTask::progress() {
  cudaError_t e = cudaEventQuery(event_);
  if (e == cudaSuccess) return true;
  if (e != cudaErrorNotReady)
    throw CommError(info().describe() + ": CUDA error while the NCCL kernel ran: " + cudaGetErrorString(e));
  // A peer that failed or a broken connection shows up here, not in the event.
  ncclResult_t async = ncclSuccess;
  ncclResult_t r = ncclCommGetAsyncError(comm_, &async);
  if (r != ncclSuccess) throw CommError(info().describe() + ": " + nccl_error("ncclCommGetAsyncError", r, comm_));
  if (async != ncclSuccess && async != ncclInProgress)
    throw CommError(info().describe() + ": NCCL reported an asynchronous error: " + ncclGetErrorString(async) +
                    " (a peer failed or the connection broke)");
  return false;
}

std::string NcclTask::waiting_for() const { return "NCCL kernel still running (a peer skipped it, diverged or died)"; }

}  // namespace mpitrain::detail
