// The Sharded strategy's optimizer state in checkpoints: whole tensors, the layout of a DDP
// checkpoint, so a run saved on N ranks resumes on M, or under DDP, and vice versa.
#include <torch/torch.h>

#include <unordered_map>

#include "mpitrain/comm/agreement.hpp"
#include "mpitrain/comm/tensor_collectives.hpp"
#include "param_state.hpp"
#include "sharded_impl.hpp"

namespace mpitrain {

// One parameter at a time: its owners' slices gathered, rank 0 writes the whole tensor (so rank 0
// holds at most its own shard plus one parameter's state).
void Sharded::save_optimizer_state(OptimizerStateWriter* out) {
  auto& im = *impl_;
  if (!optimizer_) return;
  const int rank = engine_->comm().rank(), n = engine_->comm().size();
  if (out) write_optimizer_state(*optimizer_, *model_, *out);  // the header: the run's optimizer holds no state
  std::unordered_map<size_t, std::map<std::string, at::Tensor>> mine;  // param -> this rank's slice of its state
  if (im.shard_opt)
    for (const auto& pc : im.pieces) {
      auto it = im.shard_opt->state().find(detail::impl_key(pc.shard));
      if (it != im.shard_opt->state().end()) mine[pc.param] = detail::state_tensors(*it->second);
    }
  for (size_t i = 0; i < im.params.size(); ++i) {
    const int first_owner = im.layout.first_owner(i);
    std::string keys;
    if (rank == first_owner)
      for (const auto& [k, t] : mine[i]) keys += k + "\n";
    engine_->enqueue([&](Communicator& c) { broadcast_bytes(c, keys, first_owner); }).wait();
    for (size_t p = 0; p < keys.size();) {
      const size_t q = keys.find('\n', p);
      const std::string key = keys.substr(p, q - p);
      p = q + 1;
      if (key == "step") {
        int64_t step = rank == first_owner ? mine[i].at(key).item<int64_t>() : 0;
        engine_->enqueue([&](Communicator& c) { c.broadcast(&step, 1, DType::Int64, first_owner); }).wait();
        if (out) out->write_state(im.names[i], key, at::scalar_tensor(step, at::kLong));
        continue;
      }
      std::vector<int64_t> counts;
      for (int q2 = 0; q2 < n; ++q2) {
        const auto [lo, hi] = im.layout.overlap(i, q2);
        counts.push_back(hi - lo);
      }
      torch::Tensor whole = torch::empty({im.params[i].numel()}, im.params[i].options());
      torch::Tensor part = mine.count(i) ? mine[i].at(key).contiguous() : torch::empty({0}, whole.options());
      engine_->enqueue([&](Communicator& c) {
        c.allgatherv(part.data_ptr(), whole.data_ptr(), counts, to_dtype(whole.scalar_type()));
      }).wait();
      if (out) out->write_state(im.names[i], key, whole.view(im.params[i].sizes()));
    }
  }
}

void Sharded::load_optimizer_state(OptimizerStateReader& in) {
  auto& im = *impl_;
  if (!optimizer_) return;
  // Validates and restores options and (whole) state into the run's optimizer, which holds it only
  // until each rank has cut out its slices.
  read_optimizer_state(*optimizer_, *model_, in);
  if (im.shard_opt) {
    im.shard_opt->state().clear();
    for (const auto& pc : im.pieces) {
      auto it = optimizer_->state().find(detail::impl_key(im.params[pc.param]));
      if (it == optimizer_->state().end()) continue;  // never stepped
      std::map<std::string, at::Tensor> slice;
      for (const auto& [k, t] : detail::state_tensors(*it->second))
        slice[k] = k == "step" ? t : t.reshape({-1}).narrow(0, pc.begin, pc.length).clone();
      im.shard_opt->state()[detail::impl_key(pc.shard)] = detail::make_state(im.type, slice);
    }
  }
  optimizer_->state().clear();
}

}  // namespace mpitrain
