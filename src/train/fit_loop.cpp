// Worker side of Trainer::fit / validate / test: the training loop on one rank of the job, with
// checkpoints (ModelCheckpoint), exact resume and, in SPMD runs, checkpoint-and-stop on signals.
#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <filesystem>
#include <iomanip>
#include <sstream>

#include "hdf5_io/checkpoint_file.hpp"
#include "mpitrain/data/data_loader.hpp"
#include "mpitrain/train/checkpoint.hpp"
#include "mpitrain/train/loggers.hpp"
#include "mpitrain/train/metrics.hpp"
#include "mpitrain/train/trainer.hpp"
#include "preemption.hpp"
#include "json_number.hpp"
#include "seeds.hpp"

namespace mpitrain {

namespace {

std::string format_line(int64_t epoch, int64_t epochs, int64_t batch, int64_t batches, int64_t step, double it_s,
                        const std::map<std::string, double>& shown) {
  std::ostringstream s;
  s << "epoch " << epoch + 1 << "/" << epochs << " batch " << batch << "/" << batches << " step " << step;
  for (auto& [k, v] : shown) s << " " << k << " " << std::setprecision(4) << v;
  s << " " << std::fixed << std::setprecision(1) << it_s << " it/s";
  if (it_s > 0) s << " eta " << int64_t(double(batches - batch) / it_s) << "s";
  return s.str();
}

// "Best" of a metric without being told its direction: accuracies up, everything else down.
bool higher_is_better(const std::string& name) { return name.find("acc") != std::string::npos; }

// Test hook (fault injection for the resume tests): MPITRAIN_TEST_KILL_AT_STEP="RANK:STEP:MARKER"
// makes that rank SIGKILL itself after that optimizer step, once: MARKER (a file) records that it did.
void maybe_kill_self(int rank, int64_t step) {
  static const char* spec = std::getenv("MPITRAIN_TEST_KILL_AT_STEP");
  if (!spec || !*spec) return;
  int r = -1;
  long long s = -1;
  char marker[4096] = {0};
  if (std::sscanf(spec, "%d:%lld:%4095s", &r, &s, marker) != 3 || r != rank || s != step) return;
  if (std::filesystem::exists(marker)) return;
  std::ofstream(marker) << "killed rank " << rank << " after step " << step << "\n";
  std::raise(SIGKILL);
}

// A failure on some ranks must become the same error on all of them (else the rest wait in the
// next collective until the deadline, and only the failing rank knows why): the lowest failing
// rank's message and error family are broadcast, and every rank throws that.
void agree_or_throw(Engine& engine, const std::exception_ptr& mine, int rank, int world) {
  int32_t first = mine ? rank : world;
  engine.allreduce(&first, 1, DType::Int32, ReduceOp::Min).wait();
  if (first == world) return;
  std::string kind = "exception", message;
  if (rank == first) {
    try {
      std::rethrow_exception(mine);
    } catch (const std::exception& e) {
      kind = error_kind_of(e);
      message = e.what();
    } catch (...) {
      message = "unknown exception";
    }
  }
  std::string text = rank == first ? nlohmann::json{{"kind", kind}, {"message", message}}.dump() : std::string();
  int64_t len = int64_t(text.size());
  engine.enqueue([&](Communicator& c) { c.broadcast(&len, 1, DType::Int64, first); }).wait();
  text.resize(size_t(len + 3) / 4 * 4, ' ');  // travels as int32 words; JSON ignores the padding
  engine.enqueue([&](Communicator& c) { c.broadcast(text.data(), int64_t(text.size() / 4), DType::Int32, first); }).wait();
  if (rank == first) std::rethrow_exception(mine);
  const nlohmann::json j = nlohmann::json::parse(text);
  const std::string k = j.at("kind"), msg = j.at("message");  // the launcher adds "rank r: "
  if (k == "config") throw ConfigError(msg);
  if (k == "checkpoint") throw CheckpointError(msg);
  if (k == "comm") throw CommError(msg);
  throw Error(msg);
}

// Every rank's generator state, gathered to all (only rank 0 writes them).
std::vector<at::Tensor> gather_rng_states(Engine& engine, int world) {
  at::Tensor mine = rng_state().contiguous();
  int64_t words = (mine.numel() + 3) / 4;
  int64_t range[2] = {words, -words};  // max and -min in one reduction: every rank sees the same
  engine.allreduce(range, 2, DType::Int64, ReduceOp::Max).wait();
  if (range[0] != -range[1]) throw CheckpointError("ranks disagree on the size of the generator state");
  std::vector<int32_t> send(size_t(words), 0), recv(size_t(words * world));
  std::memcpy(send.data(), mine.data_ptr(), size_t(mine.numel()));
  engine.enqueue([&](Communicator& c) { c.allgather(send.data(), recv.data(), words, DType::Int32); }).wait();
  std::vector<at::Tensor> out;
  for (int r = 0; r < world; ++r)
    out.push_back(at::from_blob(recv.data() + r * words, {mine.numel()}, at::kByte).clone());
  return out;
}

// One pass of validation_step / test_step over a loader (at most `limit` batches; -1: all).
void run_evaluation(Module& m, DataLoader& loader, bool is_test, int64_t limit) {
  torch::NoGradGuard no_grad;
  m.eval();
  auto epoch = loader.epoch();
  const int64_t nb = limit < 0 ? loader.batches_per_epoch() : std::min(limit, loader.batches_per_epoch());
  for (int64_t b = 0; b < nb; ++b) {
    Batch batch = *epoch->next();
    if (is_test) m.test_step(batch, b);
    else m.validation_step(batch, b);
  }
  m.train();
}

// Callback and metric state that travels in a checkpoint (TrainerState::extra).
struct CallbackState {
  double es_best = 0;     // EarlyStopping's best value so far
  int64_t bad_epochs = 0;
  bool early_stopped = false;
  std::map<std::string, double> best, last;  // best and last epoch value of every metric

  nlohmann::json to_json(const ModelCheckpoint& checkpointer, const nlohmann::json& epoch_sums) const {
    return {{"model_checkpoint", checkpointer.state()},
            {"epoch_sums", epoch_sums},
            {"early_stopping_best", detail::json_number(es_best)},
            {"early_stopping_bad_epochs", bad_epochs},
            {"early_stopped", early_stopped},
            {"best_metrics", detail::json_numbers(best)},
            {"last_metrics", detail::json_numbers(last)}};
  }
  // Restores this, the checkpointer's files and the epoch's metric sums (values on one rank only).
  void parse(const nlohmann::json& j, ModelCheckpoint& checkpointer, MetricSink& sink, bool with_sums) {
    if (j.contains("early_stopping_best")) es_best = detail::number_from_json(j["early_stopping_best"]);
    bad_epochs = j.value("early_stopping_bad_epochs", int64_t(0));
    early_stopped = j.value("early_stopped", false);
    best = detail::numbers_from_json(j.value("best_metrics", nlohmann::json::object()));
    last = detail::numbers_from_json(j.value("last_metrics", nlohmann::json::object()));
    if (j.contains("model_checkpoint")) checkpointer.load_state(j["model_checkpoint"]);
    if (j.contains("epoch_sums")) sink.load_state(j["epoch_sums"], with_sums);
  }
};

// A dataset already split across ranks (rank_local) is only shuffled here, by a seed of its own rank.
DistributedSampler sampler_for(const Dataset& ds, int n, int rank, bool shuffle, uint64_t seed) {
  if (ds.rank_local()) return DistributedSampler(ds.size(), 1, 0, shuffle, detail::mix_seed(seed, rank, -1));
  return DistributedSampler(ds.size(), n, rank, shuffle, seed);
}

std::unique_ptr<DataLoader> loader_for(const std::shared_ptr<Dataset>& ds, int n, int rank, int64_t batch) {
  if (!ds) return nullptr;
  return std::make_unique<DataLoader>(ds, sampler_for(*ds, n, rank, false, 0), batch);
}

}  // namespace

std::string resolve_checkpoint_path(const std::string& ckpt_path, const std::string& dir) {
  if (ckpt_path.empty()) return "";
  if (ckpt_path == "latest" || ckpt_path == "auto") {
    const std::string latest = hdf5_io::read_latest(dir);
    if (latest.empty()) {
      if (ckpt_path == "auto") return "";
      throw CheckpointError("no checkpoint to resume from: " + dir + "/latest does not exist");
    }
    if (!std::filesystem::exists(latest))
      throw CheckpointError(dir + "/latest names " + latest + ", which does not exist");
    return latest;
  }
  if (!std::filesystem::exists(ckpt_path)) throw CheckpointError("checkpoint " + ckpt_path + " does not exist");
  return ckpt_path;
}

nlohmann::json Trainer::run(Module& m, const TrainerOptions& o, TaskContext& ctx, const FitInfo& info) {
  o.validate();
  const int rank = ctx.rank(), n = ctx.world_size();
  if (o.deterministic) at::globalContext().setDeterministicAlgorithms(true, false);
  m.rank_ = rank;
  m.world_size_ = n;
  MetricSink sink;
  m.sink_ = &sink;
  // SPMD: from here on SIGTERM/SIGUSR1 mean "checkpoint at the next step and stop" (before the
  // first step, the run stops there with the checkpoint it resumed from).
  std::unique_ptr<detail::PreemptionSignals> signals;
  if (ctx.env().role == Role::Spmd) signals = std::make_unique<detail::PreemptionSignals>();

  DataLoaders dl = m.dataloaders();
  if (!dl.train) throw ConfigError("dataloaders(): no training dataset");
  if (dl.batch_size < 1) throw ConfigError("batch size must be at least 1 (got " + std::to_string(dl.batch_size) + ")");
  DataLoader train(dl.train, sampler_for(*dl.train, n, rank, dl.shuffle, o.seed), dl.batch_size);
  auto val = loader_for(dl.val, n, rank, dl.batch_size), test = loader_for(dl.test, n, rank, dl.batch_size);
  Optimizers optim = m.configure_optimizers();
  if (!optim.optimizer) throw ConfigError("configure_optimizers(): no optimizer");

  Engine engine(ctx.comm());
  const std::string ckpt_dir = o.checkpoint_dir();
  ModelCheckpoint checkpointer(o.checkpoint, ckpt_dir);

  // ---- resume: every rank reads the same file (its own RNG state); all agree it worked.
  TrainerState state;
  at::Tensor resume_rng;
  std::string resumed_from;
  CallbackState cb;
  cb.es_best = o.early_stopping.mode == "min" ? INFINITY : -INFINITY;
  {
    std::exception_ptr err;
    try {
      resumed_from = resolve_checkpoint_path(info.ckpt_path, ckpt_dir);
      if (!resumed_from.empty()) {
        LoadedCheckpoint c = load_checkpoint(resumed_from, m, &optim, rank);
        state = c.state;
        cb.parse(state.extra, checkpointer, sink, rank == 0);
        if (c.meta.world_size == n) {
          resume_rng = c.rng_state;
          if (resume_rng.defined()) {  // a state this generator refuses must fail here, on every rank
            at::Tensor current = rng_state();
            set_rng_state(resume_rng);
            set_rng_state(current);
          }
        } else if (state.batch_in_epoch > 0) {
          // Batches are per rank: after b batches on N ranks the first b*B*N shuffled examples are
          // done, which is b*N/M batches on M ranks when that divides (and the split is global).
          const int64_t done = state.batch_in_epoch * c.meta.world_size;
          const bool exact = done % n == 0 && !dl.train->rank_local();
          if (rank == 0)
            ctx.log("resuming a checkpoint of " + std::to_string(c.meta.world_size) + " ranks on " + std::to_string(n) +
                    (exact ? ": continuing the epoch at batch " + std::to_string(done / n)
                           : ": cannot split the rest of the epoch exactly, so epoch " + std::to_string(state.epoch + 1) +
                                 " restarts (its first examples are seen twice)") +
                    "; generator states start afresh");
          state.batch_in_epoch = exact ? done / n : 0;
        }
      }
    } catch (const nlohmann::json::exception& e) {
      err = std::make_exception_ptr(CheckpointError("checkpoint " + resumed_from + ": bad trainer state (" + e.what() + ")"));
    } catch (...) {
      err = std::current_exception();
    }
    agree_or_throw(engine, err, rank, n);
  }
  if (rank == 0 && resumed_from.empty() && checkpointer.enabled() && !hdf5_io::read_latest(ckpt_dir).empty())
    ctx.log("note: " + ckpt_dir + " already holds checkpoints of another run (latest: " + hdf5_io::read_latest(ckpt_dir) +
            "); this fresh run replaces `latest` and same-named files (--resume auto / ckpt_path \"auto\" continues instead)");
  if (rank == 0 && !resumed_from.empty())
    ctx.log("resuming from " + resumed_from + " at epoch " + std::to_string(state.epoch + 1) + ", batch " +
            std::to_string(state.batch_in_epoch) + ", step " + std::to_string(state.global_step));

  DDP strategy(o.ddp);
  strategy.setup(m, engine);
  std::vector<std::unique_ptr<Logger>> loggers;  // rank 0 writes
  if (rank == 0)
    for (const auto& name : o.loggers) {
      if (name == "csv") loggers.push_back(std::make_unique<CsvLogger>(o.default_root_dir, !resumed_from.empty()));
      if (name == "tensorboard") loggers.push_back(std::make_unique<TensorBoardLogger>(o.default_root_dir + "/tensorboard"));
    }
  const bool bf16 = o.precision == "bf16-mixed";

  double& es_best = cb.es_best;
  int64_t& bad_epochs = cb.bad_epochs;
  std::map<std::string, double>& best = cb.best;
  std::map<std::string, double>& last = cb.last;
  bool& stop = cb.early_stopped;  // max_steps is not recorded: a resumed run may be given more
  int64_t steps = state.global_step, samples = 0, epochs_run = state.epoch;  // epochs_run: completed, in all attempts
  std::string newest_checkpoint = resumed_from;
  int64_t last_saved_step = resumed_from.empty() ? -1 : steps;
  auto max_steps_reached = [&] { return o.max_steps > 0 && steps >= o.max_steps; };

  // Collective: every rank contributes its generator state and metric sums; rank 0 writes.
  auto save = [&](int64_t epoch, int64_t batch_in_epoch, std::optional<double> score) {
    TrainerState st{epoch, batch_in_epoch, steps, nlohmann::json::object()};
    auto rngs = gather_rng_states(engine, n);
    nlohmann::json sums = sink.state(engine);
    const std::string name = ModelCheckpoint::file_name(epoch - (batch_in_epoch == 0 ? 1 : 0), steps);
    std::exception_ptr err;
    if (rank == 0) {
      try {
        std::filesystem::create_directories(ckpt_dir);
        hdf5_io::remove_stale_temporaries(ckpt_dir);
        auto dropped = checkpointer.record(name, score);
        st.extra = cb.to_json(checkpointer, sums);
        CheckpointMeta meta{info.module_name, info.config, o.to_json(), n, o.strategy};
        save_checkpoint(ckpt_dir + "/" + name, m, optim, st, rngs, meta);
        checkpointer.publish(name, dropped);
      } catch (const std::exception& e) {
        // Not bad input (disk full, I/O error): a plain Error, so the CLI exits 1 and FailureConfig
        // may retry. The previous checkpoint and `latest` are untouched.
        err = std::make_exception_ptr(Error("cannot write checkpoint " + ckpt_dir + "/" + name + ": " + e.what()));
      }
    }
    agree_or_throw(engine, err, rank, n);
    newest_checkpoint = ckpt_dir + "/" + name;
    last_saved_step = steps;
  };

  m.on_fit_start();
  const auto t0 = std::chrono::steady_clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  int preempted_by = 0;
  int64_t stopped_at_batch = -1;  // max_steps stopped the last epoch before its end (next batch)
  for (int64_t epoch = state.epoch; epoch < o.max_epochs && !stop && !max_steps_reached(); ++epoch) {
    torch::manual_seed(detail::mix_seed(o.seed, rank, epoch));
    const int64_t start = epoch == state.epoch ? state.batch_in_epoch : 0;
    if (start > 0 && resume_rng.defined()) set_rng_state(resume_rng);  // mid-epoch: where the generator was
    train.set_epoch(epoch);
    m.train();
    m.on_train_epoch_start(epoch);
    const int64_t nb = o.limit_train_batches < 0 ? train.batches_per_epoch()
                                                  : std::min(o.limit_train_batches, train.batches_per_epoch());
    auto it = train.epoch(std::min(start, nb));
    strategy.zero_grad();
    auto window_start = std::chrono::steady_clock::now();
    int64_t window_steps = 0;
    for (int64_t b = start; b < nb; ++b) {
      if (max_steps_reached()) {
        stopped_at_batch = b;
        break;
      }
      Batch batch = *it->next();
      const bool sync = (b + 1) % o.accumulate_grad_batches == 0 || b == nb - 1;
      strategy.before_backward(sync);
      torch::Tensor loss;
      {
        if (bf16) {
          at::autocast::set_cpu_enabled(true);
          at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
        }
        loss = m.training_step(batch, b);
        if (bf16) {
          at::autocast::set_cpu_enabled(false);
          at::autocast::clear_cache();
        }
      }
      if (!loss.defined() || loss.numel() != 1)
        throw ConfigError("training_step must return a scalar loss, got " +
                          (loss.defined() ? "a tensor of shape " + c10::str(loss.sizes()) : std::string("an undefined tensor")));
      (loss.to(torch::kFloat) / double(o.accumulate_grad_batches)).backward();
      m.log("train_loss", loss.item<double>(), {true, true, true, true}, batch.size());
      samples += batch.size();
      if (!sync) continue;
      strategy.after_backward();
      if (o.gradient_clip_val > 0) torch::nn::utils::clip_grad_norm_(m.parameters(), o.gradient_clip_val);
      optim.optimizer->step();
      if (optim.scheduler) optim.scheduler->step();
      strategy.zero_grad();
      ++steps;
      ++window_steps;
      auto step_values = sink.take_step_values();
      if (steps % o.log_every_n_steps == 0)
        for (auto& l : loggers) l->log_metrics(step_values, steps);
      if (rank == 0 && o.enable_progress_bar && (steps % o.log_every_n_steps == 0 || b == nb - 1)) {
        const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - window_start).count();
        ctx.report_progress({{"line", format_line(epoch, o.max_epochs, b + 1, nb, steps,
                                                  dt > 0 ? double(window_steps * o.accumulate_grad_batches) / dt : 0,
                                                  step_values)},
                             {"epoch", epoch},
                             {"step", steps}});
        window_start = std::chrono::steady_clock::now();
        window_steps = 0;
      }
      if (checkpointer.due_after_step(steps)) save(epoch, b + 1, std::nullopt);
      maybe_kill_self(rank, steps);
      if (signals) {  // SPMD: stop together at this step boundary if any rank was signalled
        int32_t sig = detail::PreemptionSignals::received();
        engine.allreduce(&sig, 1, DType::Int32, ReduceOp::Max).wait();
        if (sig) {
          if (last_saved_step != steps) save(epoch, b + 1, std::nullopt);
          preempted_by = sig;
          break;
        }
      }
      if (max_steps_reached() && b + 1 < nb) {
        stopped_at_batch = b + 1;
        break;
      }
    }
    if (preempted_by) break;
    m.on_train_epoch_end(epoch);
    if (val && (epoch + 1) % o.check_val_every_n_epoch == 0) {
      run_evaluation(m, *val, false, o.limit_val_batches);
      m.on_validation_epoch_end(epoch);
    }
    last = sink.reduce_epoch(engine);
    ++epochs_run;
    for (auto& [k, v] : last) {
      if (!std::isfinite(v)) continue;
      auto b = best.find(k);
      if (b == best.end() || (higher_is_better(k) ? v > b->second : v < b->second)) best[k] = v;
    }
    {
      std::map<std::string, double> epoch_metrics;
      for (auto& [k, v] : last) epoch_metrics[k + (k.rfind("train_", 0) == 0 ? "_epoch" : "")] = v;
      epoch_metrics["epoch"] = double(epoch);
      for (auto& l : loggers) l->log_metrics(epoch_metrics, steps);
    }
    if (rank == 0) {
      std::ostringstream s;
      s << "epoch " << epoch + 1 << " done:";
      for (auto& [k, v] : last) s << " " << k << "=" << std::setprecision(4) << v;
      ctx.log(s.str());
    }
    if (!o.early_stopping.monitor.empty()) {
      auto f = last.find(o.early_stopping.monitor);
      if (f == last.end())
        throw ConfigError("EarlyStopping: metric '" + o.early_stopping.monitor + "' was not logged this epoch");
      const bool better = o.early_stopping.mode == "min" ? f->second < es_best - o.early_stopping.min_delta
                                                         : f->second > es_best + o.early_stopping.min_delta;
      if (better) {
        es_best = f->second;
        bad_epochs = 0;
      } else if (++bad_epochs >= o.early_stopping.patience) {
        stop = true;
        if (rank == 0) ctx.log("early stopping: " + o.early_stopping.monitor + " did not improve for " + std::to_string(bad_epochs) + " epochs");
      }
    }
    const bool final_epoch = stop || max_steps_reached() || epoch + 1 == o.max_epochs;
    if (stopped_at_batch >= 0) {  // inside the epoch: a resumed run with a larger max_steps goes on from there
      if (checkpointer.enabled() && last_saved_step != steps) save(epoch, stopped_at_batch, std::nullopt);
    } else if (checkpointer.due_after_epoch(epoch) || (final_epoch && checkpointer.enabled() && last_saved_step != steps)) {
      std::optional<double> score;
      if (!o.checkpoint.monitor.empty()) {
        auto f = last.find(o.checkpoint.monitor);
        if (f == last.end()) throw ConfigError("ModelCheckpoint: metric '" + o.checkpoint.monitor + "' was not logged this epoch");
        score = f->second;
      }
      save(epoch + 1, 0, score);
    }
  }
  const double wall = seconds();
  nlohmann::json out;
  if (preempted_by) {
    if (rank == 0)
      ctx.log("signal " + std::to_string(preempted_by) + " received: checkpointed at step " + std::to_string(steps) +
              " to " + newest_checkpoint + "; rerun with --resume auto (ckpt_path \"auto\") to continue");
    out = {{"preempted", true}, {"signal", preempted_by}, {"checkpoint", newest_checkpoint}, {"steps", steps}};
    return out;
  }
  if (test && o.run_test) {
    run_evaluation(m, *test, true, -1);
    for (auto& [k, v] : sink.reduce_epoch(engine)) last[k] = v;
  }
  m.on_fit_end();
  // Global throughput: every rank trained `samples` examples in about `wall` seconds.
  int64_t all_samples = samples;
  engine.allreduce(&all_samples, 1, DType::Int64, ReduceOp::Sum).wait();
  std::map<std::string, double> metrics = last;
  for (auto& [k, v] : best) metrics["best_" + k] = v;
  metrics["epochs"] = double(epochs_run);
  metrics["steps"] = double(steps);
  metrics["wall_s"] = wall;
  metrics["samples_per_s"] = wall > 0 ? double(all_samples) / wall : 0;
  if (!o.early_stopping.monitor.empty()) metrics["early_stopping_best"] = es_best;
  for (auto& [k, v] : metrics) ctx.report_metric(k, v);
  for (auto& [k, v] : metrics) out[k] = v;
  if (!newest_checkpoint.empty()) out["checkpoint"] = newest_checkpoint;
  if (!checkpointer.best_path().empty()) out["best_checkpoint"] = checkpointer.best_path();
  return out;
}

nlohmann::json Trainer::evaluate(Module& m, const TrainerOptions& o, TaskContext& ctx, const std::string& stage,
                                 const std::string& ckpt_path) {
  o.validate();
  const int rank = ctx.rank(), n = ctx.world_size();
  m.rank_ = rank;
  m.world_size_ = n;
  MetricSink sink;
  m.sink_ = &sink;
  Engine engine(ctx.comm());
  const std::string ckpt_dir = o.checkpoint_dir();
  std::string path;
  {
    std::exception_ptr err;
    try {
      path = resolve_checkpoint_path(ckpt_path, ckpt_dir);
      if (!path.empty()) load_checkpoint(path, m, nullptr, rank);
    } catch (...) {
      err = std::current_exception();
    }
    agree_or_throw(engine, err, rank, n);
  }
  DataLoaders dl = m.dataloaders();
  if (dl.batch_size < 1) throw ConfigError("batch size must be at least 1 (got " + std::to_string(dl.batch_size) + ")");
  auto loader = loader_for(stage == "test" ? dl.test : dl.val, n, rank, dl.batch_size);
  if (!loader) throw ConfigError("dataloaders(): no " + std::string(stage == "test" ? "test" : "validation") + " dataset");
  run_evaluation(m, *loader, stage == "test", stage == "test" ? -1 : o.limit_val_batches);
  auto metrics = sink.reduce_epoch(engine);
  for (auto& [k, v] : metrics) ctx.report_metric(k, v);
  nlohmann::json out(metrics);
  if (!path.empty()) out["checkpoint"] = path;
  return out;
}

}  // namespace mpitrain
