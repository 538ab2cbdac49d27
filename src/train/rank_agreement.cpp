#include "rank_agreement.hpp"

#include <ATen/Functions.h>

#include "mpitrain/comm/agreement.hpp"
#include "mpitrain/train/checkpoint.hpp"

namespace mpitrain::detail {

namespace {
thread_local const void* t_agreed = nullptr;  // the exception object last marked agreed on this thread
const void* handled_exception() {
  try {
    throw;
  } catch (const std::exception& e) {
    return &e;
  } catch (...) {
    return nullptr;
  }
}
}  // namespace

void throw_agreed(const Error& e) {
  try {
    throw_error(error_kind_of(e), e.what());  // its own family: `throw e` would slice it to Error
  } catch (const std::exception& x) {
    t_agreed = &x;
    throw;
  }
}

void agree_or_throw(Engine& engine, const std::exception_ptr& mine) {
  std::exception_ptr agreed;  // computed on the engine thread, thrown here: a throw there poisons the engine
  engine.enqueue([&](Communicator& c) { agreed = agreed_failure(c, mine); }).wait();
  if (!agreed) return;
  try {
    std::rethrow_exception(agreed);
  } catch (const std::exception& e) {
    t_agreed = &e;  // the same object unwinds from here: its address identifies it in the catch
    throw;
  }
}

void fail_fast_unless_agreed(bool spmd) {
  const bool agreed = handled_exception() == t_agreed;
  t_agreed = nullptr;  // spent: a later exception object at the same address is not agreed
  if (spmd && !agreed) std::terminate();
}

std::vector<at::Tensor> gather_rng_states(Engine& engine) {
  const at::Tensor mine = rng_state().contiguous();
  std::vector<std::string> all;
  engine.enqueue([&](Communicator& c) {
    all = allgather_bytes(c, std::string(static_cast<const char*>(mine.data_ptr()), size_t(mine.numel())));
  }).wait();
  std::vector<at::Tensor> out;
  for (const auto& s : all) {
    if (s.size() != size_t(mine.numel())) throw CheckpointError("ranks disagree on the size of the generator state");
    out.push_back(at::from_blob(const_cast<char*>(s.data()), {int64_t(s.size())}, at::kByte).clone());
  }
  return out;
}

}  // namespace mpitrain::detail
