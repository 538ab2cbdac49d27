// Chrome-trace JSON of the engine's work (chrome://tracing, Perfetto): one track per tensor with
// its phases (NEGOTIATE, QUEUE, MEMCPY_IN_FUSION_BUFFER, ALLREDUCE/..., MEMCPY_OUT_FUSION_BUFFER)
// and a counter of fused bytes per cycle. Events are queued by the engine thread and written by
// a writer thread, so tracing never waits on the file system.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

namespace mpitrain::detail {

class Timeline {
 public:
  using Clock = std::chrono::steady_clock;
  /// Opens `path` (ConfigError naming it when it cannot be created).
  explicit Timeline(const std::string& path);
  /// Writes what is queued and closes the JSON.
  ~Timeline();
  Timeline(const Timeline&) = delete;
  Timeline& operator=(const Timeline&) = delete;

  /// A phase of `tensor` from `begin` to `end`; `args` is a JSON object's text or empty.
  void phase(const std::string& tensor, const char* name, Clock::time_point begin, Clock::time_point end,
             std::string args = {});
  /// A counter sample (e.g. the bytes fused in one cycle).
  void counter(const char* name, Clock::time_point at, int64_t value);

 private:
  struct Event {
    std::string tensor;  // empty: a counter
    const char* name;
    int64_t ts_us, dur_us;
    std::string args;
  };
  void write_loop();
  void write(const Event& e);
  int64_t micros(Clock::time_point t) const;

  std::FILE* file_;
  Clock::time_point epoch_ = Clock::now();
  std::unordered_map<std::string, int> tid_;  // writer thread only
  bool first_ = true;                         // writer thread only
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<Event> queue_;
  bool stop_ = false;
  std::thread writer_;
};

}  // namespace mpitrain::detail
