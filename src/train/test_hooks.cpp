#include "test_hooks.hpp"

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace mpitrain::detail {

namespace {

void maybe_kill_self(int rank, int64_t step) {
  static const char* spec = std::getenv("MPITRAIN_TEST_KILL_AT_STEP");
  if (!spec || !*spec) return;
  int r = -1;
  long long s = -1;
  char marker[4096] = {0};
  if (std::sscanf(spec, "%d:%lld:%4095s", &r, &s, marker) != 3 || r != rank || s != step) return;
  if (std::filesystem::exists(marker)) return;
  std::ofstream(marker) << "killed rank " << rank << " after step " << step << "\n";
  std::raise(SIGKILL);
}

void maybe_sleep(int rank, int64_t step) {
  static const char* spec = std::getenv("MPITRAIN_TEST_SLEEP_AT_STEP");
  if (!spec || !*spec) return;
  int r = -1;
  long long s = -1;
  double seconds = 0;
  if (std::sscanf(spec, "%d:%lld:%lf", &r, &s, &seconds) != 3 || r != rank || s != step) return;
  ::usleep(useconds_t(seconds * 1e6));
}

}  // namespace

void test_hooks_after_step(int rank, int64_t step) {
  maybe_kill_self(rank, step);
  maybe_sleep(rank, step);
}

}  // namespace mpitrain::detail
