// Liveness of the ranks of a node. Each process beats a CLOCK_MONOTONIC timestamp into its line
// of the node's control region from a thread of its own, so a rank that is busy (a long step, a
// checkpoint write) keeps beating while one that is stopped (SIGSTOP, a debugger) or hung in the
// kernel does not. A waiting rank reads its peers' beats: a stale one means "not slow: stopped".
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace mpitrain::detail {

/// Nanoseconds of CLOCK_MONOTONIC: one clock for every process of the machine.
int64_t monotonic_ns();

/// What /proc says about a process, for liveness messages: "stopped (SIGSTOP)", "exited", ...
std::string process_state(int64_t pid);

class Heartbeat {
 public:
  /// Written into `beat` on destruction: the rank closed its communicator (not a stale beat).
  static constexpr uint64_t kClosed = ~uint64_t(0);
  static constexpr int kPeriodMs = 250;

  explicit Heartbeat(std::atomic<uint64_t>& beat);
  ~Heartbeat();
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;

 private:
  std::atomic<uint64_t>& beat_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace mpitrain::detail
