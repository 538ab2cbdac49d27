// DeviceRoutingCommunicator: each collective to NCCL or MPI by where its buffers live.
#include "mpitrain/comm/device_routing_communicator.hpp"

#include <cuda_runtime.h>

namespace mpitrain {

namespace {
// Device or managed memory; host memory of any kind (and null) is not.
bool on_device(const void* p) {
  if (!p) return false;
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    cudaGetLastError();  // older drivers' answer for plain host memory
    return false;
  }
  return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}

const char* side(bool device) { return device ? "device" : "host"; }
}  // namespace

DeviceRoutingCommunicator::DeviceRoutingCommunicator(std::unique_ptr<Communicator> host,
                                                     std::unique_ptr<NcclCommunicator> device)
    : Communicator(host->timeout()), host_(std::move(host)), device_(std::move(device)) {
  if (host_->rank() != device_->rank() || host_->size() != device_->size())
    throw ArgumentError("DeviceRoutingCommunicator: the host and device backends span different ranks");
}

Communicator& DeviceRoutingCommunicator::route(const char* what, const void* send, const void* recv) {
  const bool s = on_device(send), r = on_device(recv);
  if (send && recv && s != r)
    throw ArgumentError(std::string(what) + ": send buffer is " + side(s) + " memory, receive buffer is " + side(r) +
                        " memory; pass both on the same side");
  if (s || r) return *device_;
  return *host_;
}

Work DeviceRoutingCommunicator::iallreduce(const void* send, void* recv, int64_t count, DType dtype, ReduceOp op) {
  return route("allreduce", send, recv).iallreduce(send, recv, count, dtype, op);
}
void DeviceRoutingCommunicator::allreduce(const void* send, void* recv, int64_t count, DType dtype, ReduceOp op) {
  route("allreduce", send, recv).allreduce(send, recv, count, dtype, op);
}
Work DeviceRoutingCommunicator::ibroadcast(void* buf, int64_t count, DType dtype, int root) {
  return route("broadcast", buf, buf).ibroadcast(buf, count, dtype, root);
}
Work DeviceRoutingCommunicator::iallgather(const void* send, void* recv, int64_t count, DType dtype) {
  return route("allgather", send, recv).iallgather(send, recv, count, dtype);
}
Work DeviceRoutingCommunicator::iallgatherv(const void* send, void* recv, const std::vector<int64_t>& counts,
                                            DType dtype) {
  return route("allgatherv", send, recv).iallgatherv(send, recv, counts, dtype);
}
Work DeviceRoutingCommunicator::ireduce_scatter(const void* send, void* recv, int64_t recv_count, DType dtype,
                                                ReduceOp op) {
  return route("reduce_scatter", send, recv).ireduce_scatter(send, recv, recv_count, dtype, op);
}
Work DeviceRoutingCommunicator::ibarrier() { return host_->ibarrier(); }
SharedBuffer DeviceRoutingCommunicator::allocate_shared(size_t bytes) { return host_->allocate_shared(bytes); }

bool DeviceRoutingCommunicator::test_task(detail::Task&) {
  throw CommError("DeviceRoutingCommunicator: a Work handle that no backend issued");
}
void DeviceRoutingCommunicator::wait_task(detail::Task&) {
  throw CommError("DeviceRoutingCommunicator: a Work handle that no backend issued");
}

}  // namespace mpitrain
