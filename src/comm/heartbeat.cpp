#include "heartbeat.hpp"

#include <time.h>

#include <fstream>
#include <sstream>

namespace mpitrain::detail {

int64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

std::string process_state(int64_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!in || !std::getline(in, text)) return "its process has exited";
  // "pid (comm) S ...": the name may hold spaces and parentheses; the state follows the last ')'.
  const size_t close = text.rfind(')');
  const char state = close != std::string::npos && close + 2 < text.size() ? text[close + 2] : '?';
  switch (state) {
    case 'T': return "its process is stopped (SIGSTOP or job control)";
    case 't': return "its process is stopped by a debugger";
    case 'Z':
    case 'X': return "its process has exited";
    case 'D': return "its process is blocked in the kernel (uninterruptible I/O)";
    default: return std::string("its process is in state '") + state + "' but its heartbeat thread does not run (hung or starved)";
  }
}

Heartbeat::Heartbeat(std::atomic<uint64_t>& beat) : beat_(beat) {
  beat_.store(uint64_t(monotonic_ns()), std::memory_order_release);
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::milliseconds(kPeriodMs), [this] { return stop_; }))
      beat_.store(uint64_t(monotonic_ns()), std::memory_order_release);
  });
}

Heartbeat::~Heartbeat() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  thread_.join();
  beat_.store(kClosed, std::memory_order_release);
}

}  // namespace mpitrain::detail
