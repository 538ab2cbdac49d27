// Settings of the Engine (DESIGN §3): how the background thread runs (FIFO only, or with the
// Horovod-style coordinator), how much it fuses, how often ranks agree, and the timeline and stall
// inspector. Every field has an environment variable (EngineOptions::from_env), listed in the
// README next to Horovod's equivalents.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace mpitrain {

enum class EngineMode : uint8_t {
  /// Operations run in the order each rank enqueues them (every rank enqueues the same sequence):
  /// no per-cycle agreement, no named collectives. What DDP needs.
  Fifo,
  /// Named collectives negotiated across ranks each cycle (any submission order per rank), fused,
  /// cached; FIFO operations still run, in agreed order, between cycles.
  Coordinated,
};

struct EngineOptions {
  EngineMode mode = EngineMode::Coordinated;
  /// Ready allreduces of one dtype/op/device are packed into one collective up to this many bytes
  /// (HOROVOD_FUSION_THRESHOLD; Horovod's default was 64 MiB until late 2020, 128 MiB since).
  size_t fusion_threshold = size_t(64) << 20;
  /// The longest a cycle waits for new work; a cycle with new work waiting starts at once
  /// (HOROVOD_CYCLE_TIME, 1 ms there too).
  std::chrono::microseconds cycle_time{1000};
  /// Agreed (name, signature) pairs kept so that a cycle needs one small allreduce and no rank-0
  /// round trip (HOROVOD_CACHE_CAPACITY). 0 disables the cache.
  size_t cache_capacity = 1024;
  /// After this long, rank 0 reports every tensor still waiting for some rank, once per interval,
  /// naming the ranks that submitted it and those that did not (HOROVOD_STALL_CHECK_TIME_SECONDS).
  /// Zero: off.
  std::chrono::milliseconds stall_check{std::chrono::seconds(60)};
  /// After this long, a stalled tensor fails every rank with a CommError carrying the report
  /// (HOROVOD_STALL_SHUTDOWN_TIME_SECONDS). Zero: off.
  std::chrono::milliseconds stall_shutdown{0};
  /// Chrome-trace JSON file (HOROVOD_TIMELINE); empty: off. Written by rank 0, or by every rank if
  /// the path contains "{rank}".
  std::string timeline;

  /// `base` overridden by MPITRAIN_ENGINE_MODE (fifo|coordinated), MPITRAIN_FUSION_THRESHOLD
  /// (bytes), MPITRAIN_CYCLE_TIME_MS, MPITRAIN_CACHE_CAPACITY, MPITRAIN_STALL_CHECK_TIME_S,
  /// MPITRAIN_STALL_SHUTDOWN_TIME_S, MPITRAIN_TIMELINE. A malformed value is a ConfigError naming it.
  static EngineOptions from_env(EngineOptions base);
  static EngineOptions from_env();
  /// ConfigError naming the first field out of range.
  void validate() const;
};

}  // namespace mpitrain
