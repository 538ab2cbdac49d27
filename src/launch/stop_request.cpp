#include "mpitrain/launch/stop_request.hpp"

#include <atomic>

namespace mpitrain {

namespace {
std::atomic<int> g_stop{0};
static_assert(std::atomic<int>::is_always_lock_free, "request_stop runs in signal handlers");
}  // namespace

void request_stop(int signal) { g_stop.store(signal); }
int stop_requested() { return g_stop.load(); }
void clear_stop_request() { g_stop.store(0); }

}  // namespace mpitrain
