#include "mpitrain/strategy/horovod.hpp"

#include "mpitrain/detail/json_options.hpp"
#include "mpitrain/strategy/distributed_optimizer.hpp"
#include "mpitrain/strategy/registry.hpp"
#include "named_gradients.hpp"

namespace mpitrain {

struct Horovod::Impl {
  std::unique_ptr<detail::NamedGradients> grads;
};

MPITRAIN_REGISTER_STRATEGY("horovod", [](const nlohmann::json& o) {
  return std::make_unique<Horovod>(detail::options_from_json<HorovodOptions>(o, "strategy 'horovod'"));
});

Horovod::Horovod(HorovodOptions options) : options_(std::move(options)), impl_(std::make_unique<Impl>()) {
  parse_grad_compression(options_.compression);  // ConfigError before anything starts
  const bool hosts = options_.num_hosts != 0, slots = options_.num_slots != 0;
  if (hosts != slots) throw ConfigError("strategy 'horovod': num_hosts and num_slots go together (give both or neither)");
  if (hosts && (options_.num_hosts < 1 || options_.num_slots < 1))
    throw ConfigError("strategy 'horovod': num_hosts and num_slots must be at least 1 (got " +
                      std::to_string(options_.num_hosts) + " x " + std::to_string(options_.num_slots) + ")");
}

Horovod::~Horovod() = default;

void Horovod::setup(torch::nn::Module& model, torch::optim::Optimizer* optimizer, Engine& engine) {
  Strategy::setup(model, optimizer, engine);
  // Both checks fail alike on every rank (same options, same world), before any collective.
  if (engine.options().mode != EngineMode::Coordinated)
    throw ConfigError("strategy 'horovod' needs an Engine in Coordinated mode (MPITRAIN_ENGINE_MODE=fifo?)");
  const int world = engine.comm().size();
  if (options_.num_hosts > 0 && options_.num_hosts * options_.num_slots != world)
    throw ConfigError("strategy 'horovod': num_hosts x num_slots = " + std::to_string(options_.num_hosts) + " x " +
                      std::to_string(options_.num_slots) + " but the world has " + std::to_string(world) + " ranks");
  broadcast_parameters(model, engine, 0);
  std::vector<std::pair<std::string, torch::Tensor>> params;
  for (auto& item : model.named_parameters())
    if (item.value().requires_grad()) params.emplace_back(item.key(), item.value());
  impl_->grads = std::make_unique<detail::NamedGradients>(std::move(params), engine,
                                                           parse_grad_compression(options_.compression), "grad.", 1);
}

void Horovod::before_backward(bool sync) { impl_->grads->set_enabled(sync); }

void Horovod::after_backward() { impl_->grads->synchronize(); }

std::map<std::string, double> Horovod::stats() const {
  const EngineStats s = engine_->stats();
  return {{"submitted_gradients", double(impl_->grads ? impl_->grads->submitted() : 0)},
          {"engine_cycles", double(s.cycles)},
          {"engine_negotiations", double(s.negotiations)},
          {"engine_cache_hits", double(s.cache_hits)},
          {"engine_collectives", double(s.collectives)},
          {"engine_fused_bytes", double(s.fused_bytes)}};
}

}  // namespace mpitrain
