// The worker role: serves one task from the driver, then exits the process.
#pragma once
#include <string>

namespace mpitrain::detail {

/// Never returns: exits 0 after a successful task, non-zero after a failure (reported to the driver).
[[noreturn]] void serve_worker(const std::string& channel_name);

}  // namespace mpitrain::detail
