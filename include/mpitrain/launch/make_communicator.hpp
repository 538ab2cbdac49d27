// make_communicator: the Communicator a task runs on, chosen from where it runs (DESIGN §3): the
// MPI backend for CPU training; with Environment::use_gpu, NCCL for device buffers and MPI for
// host ones (DeviceRoutingCommunicator), one CUDA device per rank.
#pragma once
#include <mpi.h>

#include <memory>

#include "mpitrain/comm/communicator.hpp"
#include "mpitrain/launch/environment.hpp"

namespace mpitrain {

/// Collective over `world`. Without env.use_gpu: an MpiCommunicator. With it: a Communicator whose
/// backend() is "nccl", and env.device becomes "cuda:<local_rank % devices>". Throws ConfigError on
/// every rank when this build has no NCCL backend or any rank sees no CUDA device (one line naming
/// the lowest such rank, its host and CUDA's reason).
std::unique_ptr<Communicator> make_communicator(MPI_Comm world, Environment& env, const CommOptions& options = {});

}  // namespace mpitrain
