// Seeds derive from (seed, rank, epoch): rank -1 / epoch -1 are the "all ranks" / "before
// training" streams (module initialisation), so every rank builds the same initial weights.
#pragma once
#include <cstdint>

namespace mpitrain::detail {

inline uint64_t mix_seed(uint64_t seed, int rank, int64_t epoch) {
  uint64_t h = seed * 0x9E3779B97F4A7C15ull ^ (uint64_t(rank) + 1) * 0xC2B2AE3D27D4EB4Full ^
               (uint64_t(epoch) + 7) * 0x165667B19E3779F9ull;
  h ^= h >> 31;
  return h & 0x7fffffffffffull;
}

}  // namespace mpitrain::detail
