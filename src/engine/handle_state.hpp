// What a Handle and the engine thread share: completion, failure, and the result.
#pragma once
#include <ATen/core/Tensor.h>

#include <condition_variable>
#include <exception>
#include <mutex>

#include "mpitrain/engine/engine.hpp"

namespace mpitrain {

struct Engine::Handle::State {
  std::mutex m;
  std::condition_variable cv;
  int remaining = 1;  // grouped operations complete when every member has
  bool done = false;
  std::exception_ptr error;
  at::Tensor output;
  int64_t value = 0;

  /// One member finished (`error` null on success); true when that completed the operation (the
  /// caller then notifies: a cycle marks all its handles first and wakes waiters after, so a
  /// waiter woken early finds the next handles done instead of ping-ponging with the engine).
  bool mark_one(std::exception_ptr e = nullptr) {
    std::lock_guard<std::mutex> lock(m);
    if (e && !error) error = e;
    if (--remaining > 0) return false;
    done = true;
    return true;
  }
  void notify() { cv.notify_all(); }
  void finish_one(std::exception_ptr e = nullptr) {
    if (mark_one(std::move(e))) notify();
  }
};

}  // namespace mpitrain
