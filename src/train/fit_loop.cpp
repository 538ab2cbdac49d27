#include "fit_loop.hpp"

#include <torch/cuda.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <set>

#include "autocast.hpp"
#include "callbacks/metric_loggers.hpp"
#include "callbacks/preemption.hpp"
#include "callbacks/progress_bar.hpp"
#include "mpitrain/strategy/registry.hpp"
#include "rank_agreement.hpp"
#include "seeds.hpp"
#include "test_hooks.hpp"

namespace mpitrain::detail {

FitLoop::FitLoop(Module& m, const TrainerOptions& o, TaskContext& ctx, const FitInfo& info)
    : m_(m),
      o_(o),
      ctx_(ctx),
      info_(info),
      rank_(ctx.rank()),
      world_(ctx.world_size()),
      placement_{torch::Device(ctx.env().device), parse_memory_format(o.memory_format)} {
  o_.validate();
  build_callbacks();  // first: in SPMD the preemption handlers are in place before any work
}

FitLoop::~FitLoop() = default;

void FitLoop::build_callbacks() {
  callbacks_.push_back(std::make_shared<ProgressBar>(o_.enable_progress_bar));
  callbacks_.push_back(std::make_shared<MetricLoggers>(o_.loggers));
  if (!o_.early_stopping.monitor.empty()) callbacks_.push_back(std::make_shared<EarlyStopping>(o_.early_stopping));
  for (const auto& spec : o_.callbacks) callbacks_.push_back(create_callback(spec));
  checkpoint_ = std::make_shared<ModelCheckpoint>(o_.checkpoint, o_.checkpoint_dir());
  callbacks_.push_back(checkpoint_);  // after the others: it sees their decisions (a stop) and state
  callbacks_.push_back(std::make_shared<Preemption>(ctx_.env().role == Role::Spmd));
  std::set<std::string> keys;  // each state_dict has its own place in checkpoints
  for (const auto& c : callbacks_)
    if (!keys.insert(c->state_key()).second)
      throw ConfigError("two callbacks share the state key '" + c->state_key() + "' (their checkpoint state would collide)");
}

void FitLoop::setup() {
  if (o_.deterministic) at::globalContext().setDeterministicAlgorithms(true, false);
  ModuleAccess::bind(m_, &sink_, rank_, world_);
  // The strategy first: it decides which engine the run needs. Every rank builds it from the same
  // options (and reads the same MPITRAIN_* settings), so a bad option fails alike everywhere.
  EngineOptions eo;
  try {
    strategy_ = create_strategy(o_.strategy);
    eo = EngineOptions::from_env();
  } catch (const Error& e) {
    throw_agreed(e);
  }
  // A strategy that submits named collectives gets the coordinator; the others a FIFO engine,
  // which costs no per-cycle agreement.
  if (!strategy_->needs_coordinator()) eo.mode = EngineMode::Fifo;
  engine_ = std::make_unique<Engine>(ctx_.comm(), eo);
  on_every_rank(*engine_, [&] { prepare(); });
  try {
    strategy_->setup(m_, optim_.optimizer.get(), *engine_);
  } catch (const ConfigError& e) {  // a configuration that does not fit the world: alike everywhere
    throw_agreed(e);
  }
}

// The module's data, device and optimizer: no collectives, so every rank can agree on
// the outcome (bad input fails alike everywhere).
void FitLoop::prepare() {
  if (placement_.device.is_cuda() && !torch::cuda::is_available())
    throw ConfigError("use_gpu: this LibTorch was built without CUDA (torch::cuda::is_available() is false); "
                      "build mpitrain against a CUDA LibTorch, or run without --use-gpu");
  DataLoaders dl = m_.dataloaders();
  if (!dl.train) throw ConfigError("dataloaders(): no training dataset");
  if (dl.batch_size < 1) throw ConfigError("batch size must be at least 1 (got " + std::to_string(dl.batch_size) + ")");
  train_ = std::make_unique<DataLoader>(dl.train, sampler_for(*dl.train, world_, rank_, dl.shuffle, o_.seed), dl.batch_size);
  val_ = loader_for(dl.val, world_, rank_, dl.batch_size);
  test_ = loader_for(dl.test, world_, rank_, dl.batch_size);
  const size_t relaid = placement_.apply(m_);  // before the optimizer sees the parameters
  if (rank_ == 0 && placement_.format != c10::MemoryFormat::Contiguous)
    ctx_.log("memory_format " + o_.memory_format + ": " + std::to_string(relaid) +
             " 4-D parameters and buffers laid out NHWC");
  optim_ = m_.configure_optimizers();
  if (!optim_.optimizer) throw ConfigError("configure_optimizers(): no optimizer");
}

bool FitLoop::last_epoch() const { return stop_ || max_steps_reached() || epoch_ + 1 == o_.max_epochs; }

void FitLoop::request_stop(const std::string& reason) {
  stop_ = true;
  if (rank_ == 0 && !reason.empty()) ctx_.log(reason);
}

FitResult FitLoop::run() {
  try {
    setup();
    restore();
    each_callback([&](Callback& c) { c.on_fit_start(*this); });
    m_.on_fit_start();
    const auto t0 = std::chrono::steady_clock::now();
    for (epoch_ = resume_epoch_; epoch_ < o_.max_epochs && !stop_ && !max_steps_reached() && !preempted_by_; ++epoch_) {
      run_epoch();
      if (!preempted_by_) end_epoch();
    }
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    FitResult r = finish();
    r.stats.wall_s = wall;
    r.stats.samples_per_s = wall > 0 ? double(r.stats.samples) / wall : 0;
    return r;
  } catch (const std::exception& e) {
    each_callback([&](Callback& c) { c.on_exception(*this, e); });
    fail_fast_unless_agreed(ctx_.env().role == Role::Spmd);
    throw;
  }
}

void FitLoop::run_epoch() {
  torch::manual_seed(detail::mix_seed(o_.seed, rank_, epoch_));
  const int64_t start = epoch_ == resume_epoch_ ? resume_batch_ : 0;
  if (start > 0 && resume_rng_.defined()) set_rng_state(resume_rng_);  // mid-epoch: where the generator was
  train_->set_epoch(epoch_);
  m_.train();
  batches_ = o_.limit_train_batches < 0 ? train_->batches_per_epoch()
                                        : std::min(o_.limit_train_batches, train_->batches_per_epoch());
  each_callback([&](Callback& c) { c.on_train_epoch_start(*this); });
  m_.on_train_epoch_start(epoch_);
  auto it = train_->epoch(std::min(start, batches_));
  strategy_->zero_grad();
  for (int64_t b = start; b < batches_; ++b) {
    if (max_steps_reached()) {
      stopped_at_batch_ = b;
      return;
    }
    Batch batch = *it->next();
    batch = placement_.apply(std::move(batch));
    const bool sync = (b + 1) % o_.accumulate_grad_batches == 0 || b == batches_ - 1;
    each_callback([&](Callback& c) { c.on_train_batch_start(*this, b); });
    train_batch(batch, b, sync);
    if (sync) optimizer_step();
    each_callback([&](Callback& c) { c.on_train_batch_end(*this, b, sync); });
    if (sync) test_hooks_after_step(rank_, steps_);
    if (preempted_by_) return;
    if (sync && max_steps_reached() && b + 1 < batches_) {
      stopped_at_batch_ = b + 1;
      return;
    }
  }
}

void FitLoop::train_batch(const Batch& batch, int64_t b, bool sync) {
  strategy_->before_backward(sync);
  torch::Tensor loss;
  double value = 0;
  std::exception_ptr failure;
  try {
    Autocast autocast(o_.precision == "bf16-mixed");
    loss = m_.training_step(batch, b);
    if (!loss.defined() || loss.numel() != 1)
      throw ConfigError("training_step must return a scalar loss, got " +
                        (loss.defined() ? "a tensor of shape " + c10::str(loss.sizes()) : std::string("an undefined tensor")));
    value = loss.item<double>();
  } catch (...) {
    failure = std::current_exception();
  }
  agree_on_batch(failure, value);  // before backward: no rank goes on alone, no NaN reaches the gradients
  (loss.to(torch::kFloat) / double(o_.accumulate_grad_batches)).backward();
  m_.log("train_loss", value, {.on_step = true, .prog_bar = true}, batch.size());
  samples_ += batch.size();
}

void FitLoop::agree_on_batch(const std::exception_ptr& failure, double loss) {
  // Collective, one int per batch: the lowest rank whose training_step failed (code 3) or whose
  // loss is not finite (NaN 0, +inf 1, -inf 2), so that every rank stops at this batch alike.
  const int32_t none = std::numeric_limits<int32_t>::max();
  int32_t code = none;
  if (failure) code = rank_ * 4 + 3;
  else if (o_.check_finite_loss && !std::isfinite(loss)) code = rank_ * 4 + (std::isnan(loss) ? 0 : loss > 0 ? 1 : 2);
  engine_->allreduce(&code, 1, DType::Int32, ReduceOp::Min).wait();
  if (code == none) return;
  if (code % 4 == 3) agree_or_throw(*engine_, failure);  // that rank's exception, on every rank
  static const char* const how[] = {"NaN", "inf", "-inf"};
  throw_agreed(Error("train_loss became " + std::string(how[code % 4]) + " at step " + std::to_string(steps_ + 1) +
                     " (rank " + std::to_string(code / 4) + "); lower the learning rate, check the data, or set "
                     "check_finite_loss = false (--allow-nonfinite-loss)"));
}

void FitLoop::optimizer_step() {
  strategy_->after_backward();
  if (o_.gradient_clip_val > 0) strategy_->clip_grad_norm(o_.gradient_clip_val);
  strategy_->optimizer_step();
  if (optim_.scheduler) optim_.scheduler->step();
  strategy_->zero_grad();
  ++steps_;
  step_values_ = sink_.take_step_values();
}

// Under agreement: a failure every rank raises alike (a monitored metric that was not logged) is
// reported once, as bad input.
void FitLoop::end_epoch() {
  on_every_rank(*engine_, [&] { end_epoch_hooks(); });
}

void FitLoop::end_epoch_hooks() {
  m_.on_train_epoch_end(epoch_);
  const bool validate = val_ && (epoch_ + 1) % o_.check_val_every_n_epoch == 0;
  if (validate) {
    each_callback([&](Callback& c) { c.on_validation_start(*this); });
    run_evaluation(m_, *val_, false, o_.limit_val_batches, placement_);
    m_.on_validation_epoch_end(epoch_);
  }
  last_ = sink_.reduce_epoch(*engine_);
  ++epochs_done_;
  for (auto& [k, v] : last_) {
    if (!std::isfinite(v)) continue;
    auto b = best_.find(k);
    const bool higher = sink_.mode_of(k) == MetricMode::Max;
    if (b == best_.end() || (higher ? v > b->second : v < b->second)) best_[k] = v;
  }
  if (validate) each_callback([&](Callback& c) { c.on_validation_end(*this); });
  each_callback([&](Callback& c) { c.on_train_epoch_end(*this); });
}

FitResult FitLoop::finish() {
  FitResult r;
  r.stats.epochs = epochs_done_;
  r.stats.steps = steps_;
  r.checkpoint = newest_checkpoint_;
  if (preempted_by_) {
    if (rank_ == 0)
      ctx_.log("signal " + std::to_string(preempted_by_) + " received: checkpointed at step " + std::to_string(steps_) +
               " to " + newest_checkpoint_ + "; rerun with --resume auto (ckpt_path \"auto\") to continue");
    r.status = FitStatus::Preempted;
    r.signal = preempted_by_;
    return r;
  }
  if (test_ && o_.run_test) {
    run_evaluation(m_, *test_, true, -1, placement_);
    for (auto& [k, v] : sink_.reduce_epoch(*engine_)) last_[k] = v;
  }
  each_callback([&](Callback& c) { c.on_fit_end(*this); });
  m_.on_fit_end();
  // Global throughput: every rank trained `samples_` examples in about the same time.
  r.stats.samples = samples_;
  engine_->allreduce(&r.stats.samples, 1, DType::Int64, ReduceOp::Sum).wait();
  r.stats.strategy = strategy_->stats();
  r.metrics = last_;
  for (auto& [k, v] : best_) r.metrics["best_" + k] = v;
  for (auto& [k, v] : extra_metrics_) r.metrics[k] = v;
  for (auto& [k, v] : r.metrics) ctx_.report_metric(k, v);
  r.best_checkpoint = checkpoint_->best_path();
  return r;
}

}  // namespace mpitrain::detail
