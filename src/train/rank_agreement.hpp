// Cross-rank agreement inside the train layer, through the engine thread (which owns the
// Communicator during training): one failure becomes the same exception on every rank, and every
// rank's generator state is gathered for a checkpoint.
#pragma once
#include <ATen/core/Tensor.h>

#include <exception>
#include <vector>

#include "mpitrain/engine/engine.hpp"

namespace mpitrain::detail {

/// Collective: rethrows the lowest failing rank's failure on every rank (comm/agreement.hpp).
void agree_or_throw(Engine& engine, const std::exception_ptr& mine);

/// Collective: runs `f` on every rank and agrees on its failure (the same exception everywhere).
template <class F>
void on_every_rank(Engine& engine, F&& f) {
  std::exception_ptr err;
  try {
    f();
  } catch (...) {
    err = std::current_exception();
  }
  agree_or_throw(engine, err);
}

/// Collective: every rank's generator state, on every rank (only rank 0 writes them).
std::vector<at::Tensor> gather_rng_states(Engine& engine);

}  // namespace mpitrain::detail
