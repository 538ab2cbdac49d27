// One spawn-mode job (DESIGN §1): the driver starts a leader, which spawns the workers; each
// worker connects back over its own socket, gets the task and streams messages until its result.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

#include "mpitrain/launch/launcher.hpp"

namespace mpitrain::detail {

/// Runs `entry` on a fresh job of scaling.num_workers workers, driven entirely on the calling
/// thread, and ends every process of the job before returning. A failure of the job is returned
/// in Result::error; throws only when the leader cannot be started (ConfigError when there is no
/// mpitrain-leader to start, Error when starting it fails).
Result run_spawn_job(const std::string& entry, const nlohmann::json& payload, const ScalingConfig& scaling,
                     const LaunchOptions& options);

}  // namespace mpitrain::detail
