// cuda_device_count: the CUDA runtime's view of this process's devices, with the reason for none.
#include <cuda_runtime.h>

#include "mpitrain/comm/nccl_communicator.hpp"

namespace mpitrain {

int cuda_device_count(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear it: later CUDA calls must not report this one
    n = 0;
    if (why) *why = std::string("cudaGetDeviceCount: ") + cudaGetErrorString(e);
  } else if (n == 0 && why) {
    *why = "cudaGetDeviceCount: 0 devices";
  }
  return n;
}

}  // namespace mpitrain
