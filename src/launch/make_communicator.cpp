// make_communicator: MPI for CPU tasks; NCCL for device buffers (+ MPI for host ones) with use_gpu.
#include "mpitrain/launch/make_communicator.hpp"

#include "mpitrain/comm/agreement.hpp"
#include "mpitrain/comm/mpi_communicator.hpp"
#ifdef MPITRAIN_WITH_NCCL
#include "mpitrain/comm/device_routing_communicator.hpp"
#endif

namespace mpitrain {

namespace {
#ifdef MPITRAIN_WITH_NCCL
// Collective: this rank's device count, or ConfigError on every rank when some rank has none
// (agreed first: a rank alone without a device would leave the others in NCCL's bootstrap).
int agreed_device_count(Communicator& comm, const Environment& env) {
  std::string why;
  const int devices = cuda_device_count(&why);
  int32_t first = devices > 0 ? comm.size() : comm.rank();
  comm.allreduce(&first, &first, 1, DType::Int32, ReduceOp::Min);
  if (first == comm.size()) return devices;
  std::string who = comm.rank() == first ? "rank " + std::to_string(first) + " (host " + env.hostname +
                                               ") sees no CUDA device (" + why + ")"
                                         : std::string();
  broadcast_bytes(comm, who, first);
  // Ranks other than the one named end the message as agreed_failure does, so reporters name it.
  throw ConfigError("use_gpu requested, but " + who + "; run without --use-gpu, or on nodes with GPUs" +
                    (comm.rank() == first ? "" : " (raised on rank " + std::to_string(first) + ")"));
}
#endif
}  // namespace

std::unique_ptr<Communicator> make_communicator(MPI_Comm world, Environment& env, const CommOptions& options) {
  if (!env.use_gpu) return std::make_unique<MpiCommunicator>(world, options);
#ifndef MPITRAIN_WITH_NCCL
  throw ConfigError(
      "use_gpu requested, but this build of mpitrain has no NCCL backend (configure with CUDA and NCCL, "
      "-DMPITRAIN_WITH_NCCL=ON)");
#else
  auto host = std::make_unique<MpiCommunicator>(world, options);
  const int devices = agreed_device_count(*host, env);
  env.device = "cuda:" + std::to_string(env.local_rank % devices);
  auto device = std::make_unique<NcclCommunicator>(world, options);
  return std::make_unique<DeviceRoutingCommunicator>(std::move(host), std::move(device));
#endif
}

}  // namespace mpitrain
