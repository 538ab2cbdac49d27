// prepare_model / prepare_data_loader: the strategy and the sampler a hand-written loop needs,
// built in the running training function's session (session_state.hpp).
#include "mpitrain/train/loop/prepare.hpp"

#include <torch/torch.h>

#include "../fit_loop.hpp"
#include "../rank_agreement.hpp"
#include "../test_hooks.hpp"
#include "map_optimizer_state.hpp"
#include "session_state.hpp"

namespace mpitrain::loop {

PreparedModel prepare_model(torch::nn::Module& module, torch::optim::Optimizer* optimizer, const StrategySpec& spec) {
  detail::Session& session = detail::Session::current();
  auto s = std::make_unique<PreparedModel::State>();
  s->module = &module;
  s->optimizer = optimizer;
  s->rank = session.context().world_rank;
  try {  // the same options on every rank: a bad one fails alike everywhere
    s->strategy = create_strategy(spec);
  } catch (const Error& e) {
    mpitrain::detail::throw_agreed(e);
  }
  Engine& engine = session.engine(s->strategy->needs_coordinator());
  const torch::Device device(session.context().device);
  mpitrain::detail::on_every_rank(engine, [&] {
    if (!device.is_cpu() && !torch::cuda::is_available())
      throw ConfigError("use_gpu: this LibTorch was built without CUDA; run without use_gpu");
    if (!device.is_cpu()) module.to(device);  // in place: the optimizer's references stay valid
  });
  try {
    s->strategy->setup(module, optimizer, engine);
  } catch (const ConfigError& e) {
    mpitrain::detail::throw_agreed(e);
  }
  return PreparedModel(&session.add_model(std::move(s)));
}

void PreparedModel::zero_grad() { s_->strategy->zero_grad(); }

void PreparedModel::set_sync(bool sync) { s_->strategy->before_backward(sync); }

void PreparedModel::synchronize_gradients() { s_->strategy->after_backward(); }

void PreparedModel::step(double max_grad_norm) {
  if (!s_->optimizer)  // the same on every rank
    mpitrain::detail::throw_agreed(
        ConfigError("PreparedModel::step: prepare_model was given no optimizer (step it yourself after "
                    "synchronize_gradients(), or pass it to prepare_model)"));
  s_->strategy->after_backward();
  if (max_grad_norm > 0) s_->strategy->clip_grad_norm(max_grad_norm);
  s_->strategy->optimizer_step();
  ++s_->steps;
  mpitrain::detail::test_hooks_after_step(s_->rank, s_->steps);
}

void PreparedModel::save(Checkpoint& checkpoint) {
  if (s_->rank == 0) {
    checkpoint.add_module("model", *s_->module);
    checkpoint.tensors["prepared_model/steps"] = torch::tensor({s_->steps});
  }
  if (!s_->optimizer) return;
  std::unique_ptr<OptimizerStateWriter> w;
  if (s_->rank == 0) w = detail::optimizer_writer(checkpoint, "optimizer");
  s_->strategy->save_optimizer_state(w.get());
}

void PreparedModel::load(const Checkpoint& checkpoint) {
  Engine& engine = detail::Session::current().engine();
  mpitrain::detail::on_every_rank(engine, [&] {
    checkpoint.load_module("model", *s_->module);
    auto steps = checkpoint.tensors.find("prepared_model/steps");
    if (steps != checkpoint.tensors.end()) s_->steps = steps->second.item<int64_t>();
  });
  if (!s_->optimizer) return;
  auto r = detail::optimizer_reader(checkpoint, "optimizer");
  mpitrain::detail::on_every_rank(engine, [&] {
    if (!r->present()) throw CheckpointError(r->source() + " holds no optimizer state (saved without an optimizer?)");
    s_->strategy->load_optimizer_state(*r);
  });
}

Strategy& PreparedModel::strategy() { return *s_->strategy; }
int64_t PreparedModel::steps() const { return s_->steps; }

PreparedDataLoader::PreparedDataLoader(std::shared_ptr<const Dataset> dataset, int world, int rank, int64_t batch_size,
                                       bool shuffle, uint64_t seed, bool drop_last, std::string device)
    : loader_(dataset, mpitrain::detail::sampler_for(*dataset, world, rank, shuffle, seed), batch_size, drop_last),
      device_(std::move(device)) {}

PreparedDataLoader::Iterator::Iterator(DataLoader::Epoch* e, const std::string* device) : epoch_(e), device_(device) {
  if (!e) return;
  done_ = false;
  ++*this;
}

PreparedDataLoader::Iterator& PreparedDataLoader::Iterator::operator++() {
  std::optional<Batch> b = epoch_->next();
  if (!b) {
    done_ = true;
    batch_ = {};
    return *this;
  }
  batch_ = std::move(*b);
  if (*device_ != "cpu") {
    const torch::Device d(*device_);
    batch_ = {batch_.input.to(d), batch_.target.to(d)};
  }
  return *this;
}

PreparedDataLoader::Iterator PreparedDataLoader::begin() {
  current_.reset();  // a pass left early: its prefetcher stops first
  loader_.set_epoch(epoch_++);
  current_ = loader_.epoch(0);
  return Iterator(current_.get(), &device_);
}

PreparedDataLoader prepare_data_loader(std::shared_ptr<const Dataset> dataset, int64_t batch_size, bool shuffle,
                                       uint64_t seed, bool drop_last) {
  const TrainContext& c = get_context();
  using mpitrain::detail::throw_agreed;  // the same arguments on every rank
  if (!dataset) throw_agreed(ConfigError("prepare_data_loader: no dataset"));
  if (batch_size < 1)
    throw_agreed(ConfigError("prepare_data_loader: batch size must be at least 1 (got " + std::to_string(batch_size) + ")"));
  return PreparedDataLoader(std::move(dataset), c.world_size, c.world_rank, batch_size, shuffle, seed, drop_last, c.device);
}

}  // namespace mpitrain::loop
