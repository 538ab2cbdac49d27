// Fault injection for the e2e tests, steered by environment variables (no effect when unset):
//   MPITRAIN_TEST_KILL_AT_STEP="RANK:STEP:MARKER"   that rank SIGKILLs itself after that optimizer
//       step, once: MARKER (a file) records that it did (exact-resume tests)
//   MPITRAIN_TEST_SLEEP_AT_STEP="RANK:STEP:SECONDS" that rank sleeps inside that step (a slow but
//       live rank, which the liveness check must not fail)
#pragma once
#include <cstdint>

namespace mpitrain::detail {

void test_hooks_after_step(int rank, int64_t step);

}  // namespace mpitrain::detail
