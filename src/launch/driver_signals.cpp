#include "driver_signals.hpp"

#include <atomic>
#include <csignal>
#include <mutex>

namespace mpitrain::detail {

namespace {
std::atomic<int> g_count{0}, g_last{0};
extern "C" void on_driver_signal(int sig) {
  g_last.store(sig);
  g_count.fetch_add(1);
}
std::mutex g_mutex;
int g_holders = 0;
struct sigaction g_old_term {}, g_old_int {};
bool g_term_installed = false, g_int_installed = false;

// A signal the process was started with ignored (nohup; SIGINT of a background job) stays ignored.
bool install(int sig, struct sigaction& old) {
  sigaction(sig, nullptr, &old);
  if (old.sa_handler == SIG_IGN) return false;
  struct sigaction sa {};
  sa.sa_handler = on_driver_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(sig, &sa, nullptr);
  return true;
}
}  // namespace

DriverSignals::DriverSignals() {
  std::lock_guard<std::mutex> lock(g_mutex);
  start_ = g_count.load();
  if (g_holders++ > 0) return;
  g_term_installed = install(SIGTERM, g_old_term);
  g_int_installed = install(SIGINT, g_old_int);
}

DriverSignals::~DriverSignals() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (--g_holders > 0) return;
  if (g_term_installed) sigaction(SIGTERM, &g_old_term, nullptr);
  if (g_int_installed) sigaction(SIGINT, &g_old_int, nullptr);
}

int DriverSignals::count() const { return g_count.load() - start_; }
int DriverSignals::last() const { return g_last.load(); }

}  // namespace mpitrain::detail
