// FitLoop's checkpoints: saving the current position (collective: generator states and metric
// sums from every rank, the optimizer part as the strategy decides; rank 0 writes the file) and
// resuming from one (every rank reads the same file; all agree that it worked).
#include <filesystem>

#include "fit_loop.hpp"
#include "hdf5_io/checkpoint_file.hpp"
#include "mpitrain/detail/json_number.hpp"
#include "rank_agreement.hpp"

namespace mpitrain::detail {

nlohmann::json FitLoop::callback_states() const {
  nlohmann::json states = nlohmann::json::object();
  for (const auto& c : callbacks_) {
    nlohmann::json s = c->state_dict();
    if (!s.is_null()) states[c->state_key()] = std::move(s);
  }
  return states;
}

void FitLoop::load_callback_states(const nlohmann::json& states) {
  for (auto& c : callbacks_)
    if (states.contains(c->state_key())) c->load_state_dict(states[c->state_key()]);
}

// Callback states of a checkpoint: {"callbacks": {key: state}}; checkpoints written before
// callbacks were plug-ins kept EarlyStopping's and ModelCheckpoint's state at the top level.
static nlohmann::json callback_states_of(const nlohmann::json& extra) {
  if (extra.contains("callbacks")) return extra["callbacks"];
  nlohmann::json states = nlohmann::json::object();
  if (extra.contains("model_checkpoint")) states["model_checkpoint"] = extra["model_checkpoint"];
  if (extra.contains("early_stopping_best"))
    states["early_stopping"] = {{"best", extra["early_stopping_best"]},
                                {"bad_epochs", extra.value("early_stopping_bad_epochs", int64_t(0))},
                                {"stopped", extra.value("early_stopped", false)}};
  return states;
}

void FitLoop::save_checkpoint(int64_t epoch, int64_t batch_in_epoch, std::optional<double> score) {
  const std::string dir = checkpoint_->dir();
  const std::string name = ModelCheckpoint::file_name(epoch - (batch_in_epoch == 0 ? 1 : 0), steps_);
  const auto rngs = gather_rng_states(*engine_);
  const nlohmann::json sums = sink_.state(*engine_);
  std::unique_ptr<CheckpointFileWriter> writer;
  std::vector<std::string> dropped;
  std::exception_ptr err;
  auto attempt = [&](auto&& f) {
    if (err) return;
    try {
      f();
    } catch (const std::exception& e) {
      // Not bad input (disk full, I/O error): a plain Error, so the CLI exits 1 and FailureConfig
      // may retry. The previous checkpoint and `latest` are untouched.
      err = std::make_exception_ptr(Error("cannot write checkpoint " + dir + "/" + name + ": " + e.what()));
    }
  };
  if (rank_ == 0)
    attempt([&] {
      std::filesystem::create_directories(dir);
      hdf5_io::remove_stale_temporaries(dir);
      dropped = checkpoint_->record(name, score);
      TrainerState st{epoch, batch_in_epoch, steps_, nlohmann::json::object()};
      st.extra = {{"callbacks", callback_states()},
                  {"epoch_sums", sums},
                  {"best_metrics", json_numbers(best_)},
                  {"last_metrics", json_numbers(last_)}};
      const CheckpointMeta meta{info_.module_name, info_.config, o_.to_json(), world_, o_.strategy.name};
      writer = std::make_unique<CheckpointFileWriter>(dir + "/" + name, m_, st,
                                                      optim_.scheduler ? optim_.scheduler->steps() : 0, rngs, meta);
    });
  // Collective for strategies that stream their shards to rank 0: every rank takes part, also a
  // rank 0 whose file failed (it then passes no writer, and the failure is reported below).
  try {
    strategy_->save_optimizer_state(writer && !err ? &writer->optimizer() : nullptr);
  } catch (const std::exception& e) {
    if (!err) err = std::make_exception_ptr(Error("cannot write checkpoint " + dir + "/" + name + ": " + e.what()));
  }
  if (rank_ == 0)
    attempt([&] {
      writer->commit();
      checkpoint_->publish(name, dropped);
    });
  agree_or_throw(*engine_, err);
  newest_checkpoint_ = dir + "/" + name;
  last_saved_step_ = steps_;
}

void FitLoop::restore() {
  const std::string dir = checkpoint_->dir();
  TrainerState state;
  on_every_rank(*engine_, [&] {
    try {
      resumed_from_ = resolve_checkpoint_path(info_.ckpt_path, dir);
      if (resumed_from_.empty()) return;
      LoadedCheckpoint c = load_checkpoint(
          resumed_from_, m_, rank_, [&](OptimizerStateReader& r) { strategy_->load_optimizer_state(r); },
          optim_.scheduler.get());
      state = c.state;
      load_callback_states(callback_states_of(state.extra));
      best_ = numbers_from_json(state.extra.value("best_metrics", nlohmann::json::object()));
      last_ = numbers_from_json(state.extra.value("last_metrics", nlohmann::json::object()));
      if (state.extra.contains("epoch_sums")) sink_.load_state(state.extra["epoch_sums"], rank_ == 0);
      if (c.meta.world_size == world_) {
        resume_rng_ = c.rng_state;
        if (resume_rng_.defined()) {  // a state this generator refuses must fail here, on every rank
          at::Tensor current = rng_state();
          set_rng_state(resume_rng_);
          set_rng_state(current);
        }
      } else if (state.batch_in_epoch > 0) {
        // Batches are per rank: after b batches on N ranks the first b*B*N shuffled examples are
        // done, which is b*N/M batches on M ranks when that divides (and the split is global).
        const int64_t done = state.batch_in_epoch * c.meta.world_size;
        const bool exact = done % world_ == 0 && !train_->dataset().rank_local();
        if (rank_ == 0)
          ctx_.log("resuming a checkpoint of " + std::to_string(c.meta.world_size) + " ranks on " + std::to_string(world_) +
                   (exact ? ": continuing the epoch at batch " + std::to_string(done / world_)
                          : ": cannot split the rest of the epoch exactly, so epoch " + std::to_string(state.epoch + 1) +
                                " restarts (its first examples are seen twice)") +
                   "; generator states start afresh");
        state.batch_in_epoch = exact ? done / world_ : 0;
      }
    } catch (const nlohmann::json::exception& e) {
      throw CheckpointError("checkpoint " + resumed_from_ + ": bad trainer state (" + e.what() + ")");
    }
  });
  epoch_ = resume_epoch_ = epochs_done_ = state.epoch;
  resume_batch_ = state.batch_in_epoch;
  steps_ = state.global_step;
  if (!resumed_from_.empty()) {
    newest_checkpoint_ = resumed_from_;
    last_saved_step_ = steps_;
  }
  const std::string latest = rank_ == 0 && resumed_from_.empty() && checkpoint_->enabled() ? hdf5_io::read_latest(dir) : "";
  if (!latest.empty())
    ctx_.log("note: " + dir + " already holds checkpoints of another run (latest: " + latest +
             "); this fresh run replaces `latest` and same-named files (--resume auto / ckpt_path \"auto\" continues instead)");
  if (rank_ == 0 && !resumed_from_.empty())
    ctx_.log("resuming from " + resumed_from_ + " at epoch " + std::to_string(state.epoch + 1) + ", batch " +
             std::to_string(state.batch_in_epoch) + ", step " + std::to_string(steps_));
}

}  // namespace mpitrain::detail
