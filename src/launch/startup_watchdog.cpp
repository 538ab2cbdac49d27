#include "startup_watchdog.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

#include "process_table.hpp"

namespace mpitrain::detail {

namespace {
// The value of `key` in /proc/<pid>/environ ("" when unreadable or absent).
std::string environ_value(pid_t pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string prefix = key + "=";
  for (size_t at = 0; at < all.size();) {
    const size_t end = std::min(all.find('\0', at), all.size());
    if (all.compare(at, prefix.size(), prefix) == 0) return all.substr(at + prefix.size(), end - at - prefix.size());
    at = end + 1;
  }
  return {};
}

const char* state_text(char s) {
  switch (s) {
    case 'T': return "stopped (SIGSTOP)";
    case 't': return "stopped by a debugger";
    case 'D': return "blocked in the kernel";
    case 'R': return "running";
    default: return "waiting";
  }
}

std::string my_rank() {
  for (const char* v : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"})
    if (const char* r = std::getenv(v)) return r;
  return "?";
}
}  // namespace

std::chrono::milliseconds startup_timeout_from(int argc, char** argv) {
  const char* text = std::getenv("MPITRAIN_STARTUP_TIMEOUT");
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--startup-timeout") == 0 && i + 1 < argc) text = argv[i + 1];
    if (std::strncmp(argv[i], "--startup-timeout=", 18) == 0) text = argv[i] + 18;
  }
  if (!text) return std::chrono::seconds(120);
  char* end = nullptr;
  const double s = std::strtod(text, &end);
  // Not a number: the program's own option parser rejects it later; start-up keeps the default.
  if (end == text || *end || !(s >= 0) || s > 1e7) return std::chrono::seconds(120);
  return std::chrono::milliseconds(int64_t(s * 1000));
}

std::string node_peers_report() {
  const char* ns = std::getenv("PMIX_NAMESPACE");
  if (!ns) return {};
  const pid_t me = ::getpid(), parent = ::getppid();
  std::string out;
  for (const ProcStat& p : processes()) {
    if (p.pid == me || p.ppid != parent || environ_value(p.pid, "PMIX_NAMESPACE") != ns) continue;
    std::string rank = environ_value(p.pid, "PMIX_RANK");
    out += (out.empty() ? "" : ", ") + ("rank " + (rank.empty() ? "?" : rank)) + " (pid " + std::to_string(p.pid) +
           ") " + state_text(p.state);
  }
  return out;
}

StartupWatchdog::StartupWatchdog(std::chrono::milliseconds limit, std::string what)
    : limit_(limit), what_(std::move(what)) {
  if (limit_.count() <= 0) return;
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, limit_, [this] { return done_; })) expire();
  });
}

StartupWatchdog::~StartupWatchdog() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

void StartupWatchdog::expire() const {
  const std::string peers = node_peers_report();
  std::fprintf(stderr,
               "mpitrain: rank %s (pid %d): %s did not complete within %.0f s: %s%s; a rank that is stopped or "
               "never started holds up every other (--startup-timeout / MPITRAIN_STARTUP_TIMEOUT, 0: off)\n",
               my_rank().c_str(), int(::getpid()), what_.c_str(), double(limit_.count()) / 1000.0,
               peers.empty() ? "no other rank of this job found on this node" : "this job's other ranks on this node: ",
               peers.c_str());
  std::fflush(stderr);
  ::_exit(1);
}

}  // namespace mpitrain::detail
