// Cross-rank agreement inside the train layer, through the engine thread (which owns the
// Communicator during training): one failure becomes the same exception on every rank, and every
// rank's generator state is gathered for a checkpoint.
#pragma once
#include <ATen/core/Tensor.h>

#include <exception>
#include <vector>

#include "mpitrain/engine/engine.hpp"
#include "mpitrain/errors.hpp"

namespace mpitrain::detail {

/// Collective: rethrows the lowest failing rank's failure on every rank (comm/agreement.hpp),
/// marked as agreed.
void agree_or_throw(Engine& engine, const std::exception_ptr& mine);

/// Agreed failures (every rank throws the same at the same point) may unwind and be reported once,
/// with their kind's exit code. Any other failure in an SPMD run is one rank's alone: the others
/// wait in their next collective, so the job must end at once (fail_fast_unless_agreed).
[[noreturn]] void throw_agreed(const Error& e);  ///< for a failure every rank raises alike
/// In a catch block: returns if the exception being handled was agreed (or the run is spawned,
/// where the driver ends the job); otherwise std::terminate(), whose SPMD handler (Runtime) prints
/// the rank and message and aborts every rank.
void fail_fast_unless_agreed(bool spmd);

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
