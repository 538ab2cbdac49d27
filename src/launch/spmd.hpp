// SPMD (mpirun / srun): the entry point runs in place on the launcher's world (DESIGN §1).
#pragma once
#include <nlohmann/json.hpp>

#include "mpitrain/launch/launcher.hpp"
#include "mpitrain/launch/registry.hpp"

namespace mpitrain::detail {

/// Collective over MPI_COMM_WORLD: runs `fn` on every rank with the Communicator that
/// make_communicator builds for scaling.use_gpu; rank 0's value becomes every rank's
/// Result::value. Only rank 0 passes messages to options.on_message. Exceptions propagate (a
/// ConfigError from make_communicator on every rank; others end the job in Runtime's handler).
Result run_in_place(const EntryPoint& fn, const nlohmann::json& payload, const ScalingConfig& scaling,
                    const LaunchOptions& options);

}  // namespace mpitrain::detail
