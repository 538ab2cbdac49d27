#include "mpitrain/strategy/distributed_optimizer.hpp"

#include <torch/serialize.h>
#include <torch/torch.h>

#include <sstream>
#include <unordered_map>

#include "mpitrain/comm/agreement.hpp"
#include "named_gradients.hpp"

namespace mpitrain {

void broadcast_parameters(torch::nn::Module& module, Engine& engine, int root) {
  torch::NoGradGuard no_grad;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> copies;  // (destination, contiguous copy)
  std::vector<Engine::Handle> handles;
  auto send = [&](const std::string& name, torch::Tensor t) {
    torch::Tensor wire = t.is_contiguous() ? t : t.contiguous();
    if (!wire.is_same(t)) copies.emplace_back(t, wire);
    handles.push_back(engine.broadcast_async(name, wire, root));
  };
  for (auto& item : module.named_parameters()) send("broadcast.param." + item.key(), item.value().data());
  for (auto& item : module.named_buffers()) send("broadcast.buffer." + item.key(), item.value());
  for (auto& h : handles) h.wait();
  for (auto& [dst, src] : copies) dst.copy_(src);
}

void broadcast_optimizer_state(torch::optim::Optimizer& optimizer, Engine& engine, int root) {
  // LibTorch's own serialisation carries every optimizer's state and param groups; the bytes go
  // through the engine (a FIFO operation, so in order with everything else on this engine).
  const bool is_root = engine.comm().rank() == root;
  std::string bytes;
  if (is_root) {
    torch::serialize::OutputArchive archive;
    optimizer.save(archive);
    std::ostringstream out;
    archive.save_to(out);
    bytes = out.str();
  }
  engine.enqueue([&](Communicator& c) { broadcast_bytes(c, bytes, root); }).wait();
  if (is_root) return;
  std::istringstream in(bytes);
  torch::serialize::InputArchive archive;
  archive.load_from(in);
  optimizer.load(archive);
}

struct DistributedOptimizer::Impl {
  std::unique_ptr<detail::NamedGradients> grads;
};

DistributedOptimizer::DistributedOptimizer(torch::optim::Optimizer& optimizer, torch::nn::Module& model,
                                           Engine& engine, DistributedOptimizerOptions options)
    : optimizer_(optimizer), impl_(std::make_unique<Impl>()), passes_per_step_(options.backward_passes_per_step) {
  // The optimizer's parameters, named after the module's (by identity): the same names everywhere.
  std::unordered_map<const void*, std::string> names;
  for (auto& item : model.named_parameters()) names[item.value().unsafeGetTensorImpl()] = item.key();
  std::vector<std::pair<std::string, torch::Tensor>> params;
  size_t unnamed = 0;
  for (auto& group : optimizer.param_groups())
    for (auto& p : group.params()) {
      if (!p.requires_grad()) continue;
      auto it = names.find(p.unsafeGetTensorImpl());
      params.emplace_back(it != names.end() ? it->second : "unnamed." + std::to_string(unnamed++), p);
    }
  impl_->grads = std::make_unique<detail::NamedGradients>(std::move(params), engine, options.compression,
                                                           options.prefix, options.backward_passes_per_step);
}

DistributedOptimizer::~DistributedOptimizer() = default;

void DistributedOptimizer::synchronize() { impl_->grads->synchronize(); }

void DistributedOptimizer::step() {
  synchronize();
  optimizer_.step();
}

void DistributedOptimizer::zero_grad() {
  torch::NoGradGuard no_grad;
  for (auto& group : optimizer_.param_groups())  // in place: the gradients are views into the window
    for (auto& p : group.params())
      if (p.grad().defined()) p.mutable_grad().zero_();
}

}  // namespace mpitrain
