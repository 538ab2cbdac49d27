// The launch settings that TrainerOptions and loop::RunConfig both carry (mode and timeouts in
// seconds), as launch()'s LaunchOptions: one conversion for both trainers.
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdint>

#include "mpitrain/launch/launcher.hpp"

namespace mpitrain::detail {

/// `o`: anything with mode, comm_timeout_s, liveness_timeout_s and startup_timeout_s.
template <class Options>
LaunchOptions launch_options_of(const Options& o) {
  LaunchOptions lo;
  lo.mode = o.mode;
  lo.comm_timeout = std::chrono::milliseconds(int64_t(o.comm_timeout_s * 1000));
  lo.liveness_timeout = std::chrono::milliseconds(int64_t(o.liveness_timeout_s * 1000));
  lo.startup_timeout = std::chrono::seconds(std::max<int64_t>(1, int64_t(o.startup_timeout_s)));
  return lo;
}

}  // namespace mpitrain::detail
