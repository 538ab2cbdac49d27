// precision "bf16-mixed": LibTorch's CPU autocast around the module's forward and loss only (the
// GPU path has no autocast yet).
#pragma once
#include <ATen/autocast_mode.h>

namespace mpitrain::detail {

struct Autocast {
  explicit Autocast(bool on) : on_(on) {
    if (!on_) return;
    at::autocast::set_cpu_enabled(true);
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
  }
  ~Autocast() {
    if (!on_) return;
    at::autocast::set_cpu_enabled(false);
    at::autocast::clear_cache();
  }
  bool on_;
};

}  // namespace mpitrain::detail
