#include "mpitrain/strategy/sharded.hpp"

#include <torch/optim.h>
#include <torch/torch.h>

#include <algorithm>
#include <unordered_map>

#include "mpitrain/comm/agreement.hpp"
#include "mpitrain/comm/tensor_collectives.hpp"
#include "mpitrain/detail/json_options.hpp"
#include "mpitrain/strategy/registry.hpp"
#include "param_state.hpp"

namespace mpitrain {

namespace {
std::string impl_key(const at::Tensor& p) { return c10::guts::to_string(p.unsafeGetTensorImpl()); }

// An optimizer of `type` over `groups`, with `defaults` as its default options.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::string& type,
                                                        std::vector<torch::optim::OptimizerParamGroup> groups,
                                                        const torch::optim::OptimizerOptions& defaults) {
  if (type == "sgd")
    return std::make_unique<torch::optim::SGD>(std::move(groups), static_cast<const torch::optim::SGDOptions&>(defaults));
  if (type == "adamw")
    return std::make_unique<torch::optim::AdamW>(std::move(groups), static_cast<const torch::optim::AdamWOptions&>(defaults));
  return std::make_unique<torch::optim::Adam>(std::move(groups), static_cast<const torch::optim::AdamOptions&>(defaults));
}
}  // namespace

struct Sharded::Impl {
  // The part of parameter `param` this rank owns: elements [begin, begin + length) of it.
  struct Piece {
    size_t param;
    int64_t begin, length;
    torch::Tensor shard;  // a view into `flat`: the optimizer steps it in place
  };

  ShardedOptions opts;
  std::unique_ptr<DDP> ddp;
  std::string type;
  std::vector<torch::Tensor> params;  // the optimizer's parameters, in its group order
  std::vector<std::string> names;
  std::vector<size_t> group_of;       // param -> the run optimizer's group
  std::vector<int64_t> offset;        // param -> its first element in the flat space
  int64_t total = 0, chunk = 0, first = 0, last = 0;
  std::vector<int64_t> owned_counts;  // elements owned by each rank
  torch::Tensor flat;                 // every parameter lives in here
  std::vector<Piece> pieces;
  std::unique_ptr<torch::optim::Optimizer> shard_opt;
  std::vector<size_t> shard_group_source;  // shard optimizer group -> run optimizer group

  int owner_of(int64_t element) const { return int(element / chunk); }
  // Elements of parameter i owned by rank r.
  std::pair<int64_t, int64_t> overlap(size_t i, int r) const {
    const int64_t lo = std::max(offset[i], std::min(total, r * chunk));
    const int64_t hi = std::min(offset[i] + params[i].numel(), std::min(total, (r + 1) * chunk));
    return {lo, std::max(lo, hi)};
  }
};

MPITRAIN_REGISTER_STRATEGY("sharded", [](const nlohmann::json& o) {
  return std::make_unique<Sharded>(detail::options_from_json<ShardedOptions>(o, "strategy 'sharded'"));
});

Sharded::Sharded(ShardedOptions options) : impl_(std::make_unique<Impl>()) {
  if (options.stage == 2)
    throw ConfigError("strategy 'sharded': stage 2 (gradients reduce-scattered to their owners) is not implemented yet; use stage 1");
  if (options.stage != 1) throw ConfigError("strategy 'sharded': stage must be 1 (got " + std::to_string(options.stage) + ")");
  impl_->opts = options;
  impl_->ddp = std::make_unique<DDP>(options.ddp);
}

Sharded::~Sharded() = default;

void Sharded::setup(torch::nn::Module& model, torch::optim::Optimizer* optimizer, Engine& engine) {
  Strategy::setup(model, optimizer, engine);
  auto& im = *impl_;
  if (!optimizer) return im.ddp->setup(model, optimizer, engine);  // evaluation only: nothing to shard
  im.type = detail::optimizer_type(*optimizer);
  if (im.type != "sgd" && im.type != "adam" && im.type != "adamw")
    throw ConfigError("strategy 'sharded': optimizer type '" + im.type + "' is not supported (sgd, adam, adamw)");
  std::unordered_map<const void*, std::string> names;
  for (auto& item : model.named_parameters()) names[item.value().unsafeGetTensorImpl()] = item.key();
  const auto& groups = optimizer->param_groups();
  for (size_t g = 0; g < groups.size(); ++g)
    for (const auto& p : groups[g].params()) {
      auto it = names.find(p.unsafeGetTensorImpl());
      if (it == names.end()) throw ConfigError("strategy 'sharded': the optimizer holds a tensor that is not a parameter of the model");
      if (!im.params.empty() && (p.scalar_type() != im.params[0].scalar_type() || p.device() != im.params[0].device()))
        throw ConfigError("strategy 'sharded': parameters of one dtype and device only ('" + it->second + "' differs)");
      im.params.push_back(p);
      im.names.push_back(it->second);
      im.group_of.push_back(g);
      im.offset.push_back(im.total);
      im.total += p.numel();
    }
  const int n = engine.comm().size(), r = engine.comm().rank();
  im.chunk = std::max<int64_t>(1, (im.total + n - 1) / n);
  for (int q = 0; q < n; ++q) {
    const int64_t lo = std::min(im.total, q * im.chunk), hi = std::min(im.total, lo + im.chunk);
    im.owned_counts.push_back(hi - lo);
  }
  im.first = std::min(im.total, r * im.chunk);
  im.last = im.first + im.owned_counts[size_t(r)];

  // 1. Parameters become views into one flat buffer, so sharing the updated slices is one allgather.
  {
    torch::NoGradGuard no_grad;
    im.flat = torch::empty({im.total}, im.params.empty() ? torch::TensorOptions() : im.params[0].options());
    for (size_t i = 0; i < im.params.size(); ++i) {
      torch::Tensor view = im.flat.narrow(0, im.offset[i], im.params[i].numel()).view(im.params[i].sizes());
      view.copy_(im.params[i]);
      im.params[i].set_data(view);
    }
  }
  // 2. Gradients as in DDP (which also broadcasts rank 0's parameters, now into the flat buffer).
  im.ddp->setup(model, optimizer, engine);
  // 3. This rank's pieces and an optimizer of the run's type over them, groups mirroring the run's.
  std::vector<std::vector<torch::Tensor>> shards(groups.size());
  for (size_t i = 0; i < im.params.size(); ++i) {
    const auto [lo, hi] = im.overlap(i, r);
    if (hi <= lo) continue;
    Impl::Piece pc{i, lo - im.offset[i], hi - lo, im.flat.narrow(0, lo, hi - lo)};
    shards[im.group_of[i]].push_back(pc.shard);
    im.pieces.push_back(std::move(pc));
  }
  std::vector<torch::optim::OptimizerParamGroup> shard_groups;
  for (size_t g = 0; g < groups.size(); ++g) {
    if (shards[g].empty()) continue;
    shard_groups.emplace_back(shards[g], groups[g].options().clone());
    im.shard_group_source.push_back(g);
  }
  if (!shard_groups.empty()) im.shard_opt = make_optimizer(im.type, std::move(shard_groups), groups[0].options());
}

void Sharded::before_backward(bool sync) { impl_->ddp->before_backward(sync); }
void Sharded::after_backward() { impl_->ddp->after_backward(); }
void Sharded::zero_grad() { impl_->ddp->zero_grad(); }

void Sharded::optimizer_step() {
  if (!optimizer_) throw ArgumentError("sharded: optimizer_step() without an optimizer at setup");
  auto& im = *impl_;
  if (im.shard_opt) {
    torch::NoGradGuard no_grad;
    for (auto& pc : im.pieces) {
      const torch::Tensor& g = im.params[pc.param].grad();
      if (g.defined()) pc.shard.mutable_grad() = g.view({-1}).narrow(0, pc.begin, pc.length);
    }
    // The run's optimizer carries the options (LR schedules change them there).
    for (size_t k = 0; k < im.shard_group_source.size(); ++k)
      im.shard_opt->param_groups()[k].set_options(optimizer_->param_groups()[im.shard_group_source[k]].options().clone());
    im.shard_opt->step();
  }
  const size_t esize = im.flat.element_size();
  char* base = static_cast<char*>(im.flat.data_ptr());
  const DType dt = to_dtype(im.flat.scalar_type());
  engine_->enqueue([&](Communicator& c) { c.allgatherv(base + size_t(im.first) * esize, base, im.owned_counts, dt); }).wait();
}

void Sharded::save_optimizer_state(OptimizerStateWriter* out) {
  auto& im = *impl_;
  if (!optimizer_) return;
  const int rank = engine_->comm().rank();
  if (out) write_optimizer_state(*optimizer_, *model_, *out);  // the header: the run's optimizer holds no state
  std::unordered_map<size_t, std::map<std::string, at::Tensor>> mine;  // param -> this rank's slice of its state
  if (im.shard_opt)
    for (const auto& pc : im.pieces) {
      auto it = im.shard_opt->state().find(impl_key(pc.shard));
      if (it != im.shard_opt->state().end()) mine[pc.param] = detail::state_tensors(*it->second);
    }
  // One parameter at a time: its owners' slices gathered, rank 0 writes the whole tensor.
  for (size_t i = 0; i < im.params.size(); ++i) {
    const int first_owner = im.owner_of(im.offset[i]);
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
      for (int q2 = 0; q2 < engine_->comm().size(); ++q2) {
        const auto [lo, hi] = im.overlap(i, q2);
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
      auto it = optimizer_->state().find(impl_key(im.params[pc.param]));
      if (it == optimizer_->state().end()) continue;  // never stepped
      std::map<std::string, at::Tensor> slice;
      for (const auto& [k, t] : detail::state_tensors(*it->second))
        slice[k] = k == "step" ? t : t.reshape({-1}).narrow(0, pc.begin, pc.length).clone();
      im.shard_opt->state()[impl_key(pc.shard)] = detail::make_state(im.type, slice);
    }
  }
  optimizer_->state().clear();
}

std::map<std::string, double> Sharded::stats() const {
  auto& im = *impl_;
  std::map<std::string, double> s = im.ddp->stats();
  double bytes = 0;
  if (im.shard_opt)
    for (const auto& [k, st] : im.shard_opt->state())
      for (const auto& [name, t] : detail::state_tensors(*st)) bytes += double(t.numel() * t.element_size());
  s["owned_elements"] = double(im.last - im.first);
  s["total_elements"] = double(im.total);
  s["optimizer_state_bytes"] = bytes;
  return s;
}

std::pair<int64_t, int64_t> Sharded::owned_range() const { return {impl_->first, impl_->last}; }

}  // namespace mpitrain
