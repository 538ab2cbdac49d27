#include "mpitrain/strategy/sharded.hpp"

#include <torch/optim.h>
#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <unordered_map>

#include "mpitrain/comm/tensor_collectives.hpp"
#include "mpitrain/detail/json_options.hpp"
#include "mpitrain/strategy/optim/adam.hpp"
#include "mpitrain/strategy/registry.hpp"
#include "param_state.hpp"
#include "sharded_impl.hpp"

namespace mpitrain {

namespace {
// An optimizer of `type` over `groups`, with `defaults` as its default options.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::string& type,
                                                        std::vector<torch::optim::OptimizerParamGroup> groups,
                                                        const torch::optim::OptimizerOptions& defaults) {
  if (type == "sgd")
    return std::make_unique<torch::optim::SGD>(std::move(groups), static_cast<const torch::optim::SGDOptions&>(defaults));
  if (type == "adamw")
    return std::make_unique<optim::AdamW>(std::move(groups), static_cast<const torch::optim::AdamWOptions&>(defaults));
  return std::make_unique<optim::Adam>(std::move(groups), static_cast<const torch::optim::AdamOptions&>(defaults));
}
}  // namespace

MPITRAIN_REGISTER_STRATEGY("sharded", [](const nlohmann::json& o) {
  return std::make_unique<Sharded>(detail::options_from_json<ShardedOptions>(o, "strategy 'sharded'"));
});

Sharded::Sharded(ShardedOptions options) : impl_(std::make_unique<Impl>()) {
  if (options.stage != 1 && options.stage != 2)
    throw ConfigError("strategy 'sharded': stage must be 1 (optimizer state) or 2 (optimizer state and gradients), got " +
                      std::to_string(options.stage));
  impl_->opts = options;
  if (options.stage == 1) impl_->ddp = std::make_unique<DDP>(options.ddp);
}

Sharded::~Sharded() {
  auto& im = *impl_;
  im.scatter.reset();
  // Parameters must not keep views into a shared window that goes away with the communicator.
  if (im.flat_shared) {
    torch::NoGradGuard no_grad;
    for (auto& p : im.params) p.set_data(p.data().clone());
  }
}

void Sharded::setup(torch::nn::Module& model, torch::optim::Optimizer* optimizer, Engine& engine) {
  Strategy::setup(model, optimizer, engine);
  auto& im = *impl_;
  if (!optimizer) {  // evaluation only: nothing to shard, just rank 0's weights everywhere
    if (!im.ddp) im.ddp = std::make_unique<DDP>(im.opts.ddp);
    return im.ddp->setup(model, optimizer, engine);
  }
  im.type = detail::optimizer_type(*optimizer);
  if (im.type != "sgd" && im.type != "adam" && im.type != "adamw")
    throw ConfigError("strategy 'sharded': optimizer type '" + im.type + "' is not supported (sgd, adam, adamw)");
  std::unordered_map<const void*, std::string> names;
  for (auto& item : model.named_parameters()) names[item.value().unsafeGetTensorImpl()] = item.key();
  const auto& groups = optimizer->param_groups();
  std::vector<int64_t> numel;
  for (size_t g = 0; g < groups.size(); ++g)
    for (const auto& p : groups[g].params()) {
      auto it = names.find(p.unsafeGetTensorImpl());
      if (it == names.end()) throw ConfigError("strategy 'sharded': the optimizer holds a tensor that is not a parameter of the model");
      if (!im.params.empty() && (p.scalar_type() != im.params[0].scalar_type() || p.device() != im.params[0].device()))
        throw ConfigError("strategy 'sharded': parameters of one dtype and device only ('" + it->second + "' differs)");
      if (!p.is_contiguous())
        throw ConfigError("strategy 'sharded': parameter '" + it->second + "' is not contiguous (shards are flat ranges "
                          "of contiguous parameters: use memory_format \"contiguous\" with this strategy)");
      im.params.push_back(p);
      im.names.push_back(it->second);
      im.group_of.push_back(g);
      numel.push_back(p.numel());
    }
  const torch::TensorOptions topts = im.params.empty() ? torch::TensorOptions() : im.params[0].options();
  const size_t esize = size_t(torch::elementSize(topts.dtype().toScalarType()));
  const int n = engine.comm().size(), r = engine.comm().rank();
  im.layout = detail::ShardLayout::build(numel, esize, im.opts.ddp.first_bucket_bytes, im.opts.ddp.bucket_cap_bytes, n, r);

  // 1. Parameters become views into one flat buffer (in the node-shared window when there is one:
  //    sharing the updated blocks is then a zero-copy allgather per bucket).
  const size_t flat_bytes = std::max<size_t>(size_t(im.layout.padded_total) * esize, 64);
  if (!topts.device().is_cuda())
    engine.enqueue([&](Communicator& c) {
      try {
        im.flat_shared = c.allocate_shared(flat_bytes);
      } catch (const CommError&) {  // no window (e.g. NCCL): private memory below
      }
    }).wait();
  if (im.flat_shared) {
    std::memset(im.flat_shared.data(), 0, flat_bytes);
    im.flat = torch::from_blob(im.flat_shared.data(), {im.layout.padded_total}, topts);
  } else {
    im.flat = torch::zeros({im.layout.padded_total}, topts);
  }
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < im.params.size(); ++i) {
      torch::Tensor view = im.flat.narrow(0, im.layout.offset[i], numel[i]).view(im.params[i].sizes());
      view.copy_(im.params[i]);
      im.params[i].set_data(view);
    }
  }
  // 2. Gradients: stage 1 as in DDP (which also broadcasts rank 0's parameters and buffers, now
  //    into the flat buffer); stage 2 reduce-scattered bucket by bucket.
  if (im.ddp) {
    im.ddp->setup(model, optimizer, engine);
  } else {
    engine.enqueue([t = im.flat](Communicator& c) mutable { broadcast(c, t, 0); });
    for (auto& b : model.buffers()) engine.enqueue([t = b](Communicator& c) mutable { broadcast(c, t, 0); });
    engine.synchronize();
    im.scatter = std::make_unique<detail::ReduceScatteredGradients>(im.params, im.names, im.layout, engine,
                                                                    im.opts.ddp.find_unused_parameters);
  }
  // 3. This rank's pieces and an optimizer of the run's type over them, groups mirroring the run's.
  std::vector<std::vector<torch::Tensor>> shards(groups.size());
  for (size_t i = 0; i < im.params.size(); ++i) {
    const auto [lo, hi] = im.layout.overlap(i, r);
    if (hi <= lo) continue;
    Impl::Piece pc{i, lo - im.layout.offset[i], hi - lo, im.flat.narrow(0, lo, hi - lo), {}};
    if (im.scatter) pc.grad = im.scatter->owned().narrow(0, im.layout.owned_position(i, lo), hi - lo);
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

void Sharded::before_backward(bool sync) {
  if (impl_->scatter) impl_->scatter->before_backward(sync);
  else impl_->ddp->before_backward(sync);
}

void Sharded::after_backward() {
  if (impl_->scatter) impl_->scatter->after_backward();
  else impl_->ddp->after_backward();
}

void Sharded::zero_grad() {
  if (impl_->scatter) impl_->scatter->zero_grad();
  else if (impl_->ddp) impl_->ddp->zero_grad();
}

// Stage 2: each rank holds 1/N of the averaged gradients, so the squared norm is summed across ranks.
double Sharded::clip_grad_norm(double max_norm) {
  auto& im = *impl_;
  if (!im.scatter) return Strategy::clip_grad_norm(max_norm);
  torch::NoGradGuard no_grad;
  torch::Tensor& g = im.scatter->owned();
  double sq = g.numel() ? g.to(torch::kDouble).pow(2).sum().item<double>() : 0.0;
  engine_->enqueue([&sq](Communicator& c) { c.allreduce(&sq, &sq, 1, DType::Float64, ReduceOp::Sum); }).wait();
  const double norm = std::sqrt(sq), coef = max_norm / (norm + 1e-6);
  if (coef < 1) g.mul_(coef);
  return norm;
}

void Sharded::optimizer_step() {
  if (!optimizer_) throw ArgumentError("sharded: optimizer_step() without an optimizer at setup");
  auto& im = *impl_;
  if (im.shard_opt) {
    torch::NoGradGuard no_grad;
    for (auto& pc : im.pieces) {
      if (im.scatter) {
        pc.shard.mutable_grad() = pc.grad;
        continue;
      }
      const torch::Tensor& g = im.params[pc.param].grad();
      if (g.defined()) pc.shard.mutable_grad() = g.view({-1}).narrow(0, pc.begin, pc.length);
    }
    // The run's optimizer carries the options (LR schedules change them there).
    for (size_t k = 0; k < im.shard_group_source.size(); ++k)
      im.shard_opt->param_groups()[k].set_options(optimizer_->param_groups()[im.shard_group_source[k]].options().clone());
    im.shard_opt->step();
  }
  // Owners share their updated blocks: one in-place allgather per bucket.
  const size_t esize = im.flat.element_size();
  char* base = static_cast<char*>(im.flat.data_ptr());
  const DType dt = to_dtype(im.flat.scalar_type());
  const int r = im.layout.rank;
  engine_->enqueue([&](Communicator& c) {
    for (const auto& b : im.layout.buckets)
      c.allgather(base + size_t(b.start + r * b.block) * esize, base + size_t(b.start) * esize, b.block, dt);
  }).wait();
}

std::map<std::string, double> Sharded::stats() const {
  auto& im = *impl_;
  std::map<std::string, double> s = im.ddp ? im.ddp->stats() : std::map<std::string, double>{};
  double bytes = 0, owned = 0;
  if (im.shard_opt)
    for (const auto& [k, st] : im.shard_opt->state())
      for (const auto& [name, t] : detail::state_tensors(*st)) bytes += double(t.numel() * t.element_size());
  for (const auto& pc : im.pieces) owned += double(pc.length);
  int64_t total = 0;
  for (int64_t c : im.layout.numel) total += c;
  s["stage"] = im.opts.stage;
  s["owned_elements"] = owned;
  s["total_elements"] = double(total);
  s["optimizer_state_bytes"] = bytes;
  if (im.scatter) {
    s["gradient_bytes"] = im.scatter->held_bytes();
    s["staging_bytes"] = im.scatter->staging_bytes();
    s["reductions"] = double(im.scatter->reductions());
  } else if (im.ddp) {
    s["gradient_bytes"] = s["bucket_bytes"];
  }
  s["buckets"] = double(im.layout.buckets.size());
  return s;
}

std::vector<Sharded::OwnedPiece> Sharded::owned_pieces() const {
  std::vector<OwnedPiece> v;
  for (const auto& pc : impl_->pieces) v.push_back({impl_->names[pc.param], pc.begin, pc.length});
  return v;
}

}  // namespace mpitrain
