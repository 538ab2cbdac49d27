#include "rank_agreement.hpp"

#include <ATen/Functions.h>

#include "mpitrain/comm/agreement.hpp"
#include "mpitrain/train/checkpoint.hpp"

namespace mpitrain::detail {

void agree_or_throw(Engine& engine, const std::exception_ptr& mine) {
  std::exception_ptr agreed;  // computed on the engine thread, thrown here: a throw there poisons the engine
  engine.enqueue([&](Communicator& c) { agreed = agreed_failure(c, mine); }).wait();
  if (agreed) std::rethrow_exception(agreed);
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
