#include "mpitrain/train/trainer.hpp"

#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "mpitrain/data/data_loader.hpp"
#include "mpitrain/launch/registry.hpp"
#include "mpitrain/train/loggers.hpp"
#include "mpitrain/train/metrics.hpp"

namespace mpitrain {

// ---------------------------------------------------------------- options
nlohmann::json TrainerOptions::to_json() const {
  return {{"max_epochs", max_epochs},
          {"max_steps", max_steps},
          {"limit_train_batches", limit_train_batches},
          {"limit_val_batches", limit_val_batches},
          {"check_val_every_n_epoch", check_val_every_n_epoch},
          {"accumulate_grad_batches", accumulate_grad_batches},
          {"gradient_clip_val", gradient_clip_val},
          {"precision", precision},
          {"seed", seed},
          {"deterministic", deterministic},
          {"default_root_dir", default_root_dir},
          {"enable_progress_bar", enable_progress_bar},
          {"log_every_n_steps", log_every_n_steps},
          {"run_test", run_test},
          {"loggers", loggers},
          {"early_stopping",
           {{"monitor", early_stopping.monitor},
            {"mode", early_stopping.mode},
            {"patience", early_stopping.patience},
            {"min_delta", early_stopping.min_delta}}},
          {"strategy", strategy},
          {"ddp",
           {{"bucket_cap_bytes", ddp.bucket_cap_bytes},
            {"first_bucket_bytes", ddp.first_bucket_bytes},
            {"find_unused_parameters", ddp.find_unused_parameters}}},
          {"num_workers", scaling.num_workers},
          {"cpus_per_worker", scaling.cpus_per_worker}};
}

TrainerOptions TrainerOptions::from_json(const nlohmann::json& j) {
  TrainerOptions o;
  try {
    o.max_epochs = j.value("max_epochs", o.max_epochs);
    o.max_steps = j.value("max_steps", o.max_steps);
    o.limit_train_batches = j.value("limit_train_batches", o.limit_train_batches);
    o.limit_val_batches = j.value("limit_val_batches", o.limit_val_batches);
    o.check_val_every_n_epoch = j.value("check_val_every_n_epoch", o.check_val_every_n_epoch);
    o.accumulate_grad_batches = j.value("accumulate_grad_batches", o.accumulate_grad_batches);
    o.gradient_clip_val = j.value("gradient_clip_val", o.gradient_clip_val);
    o.precision = j.value("precision", o.precision);
    o.seed = j.value("seed", o.seed);
    o.deterministic = j.value("deterministic", o.deterministic);
    o.default_root_dir = j.value("default_root_dir", o.default_root_dir);
    o.enable_progress_bar = j.value("enable_progress_bar", o.enable_progress_bar);
    o.log_every_n_steps = j.value("log_every_n_steps", o.log_every_n_steps);
    o.run_test = j.value("run_test", o.run_test);
    if (j.contains("loggers")) o.loggers = j["loggers"].get<std::vector<std::string>>();
    if (j.contains("early_stopping")) {
      const auto& e = j["early_stopping"];
      o.early_stopping.monitor = e.value("monitor", "");
      o.early_stopping.mode = e.value("mode", "min");
      o.early_stopping.patience = e.value("patience", 3);
      o.early_stopping.min_delta = e.value("min_delta", 0.0);
    }
    o.strategy = j.value("strategy", o.strategy);
    if (j.contains("ddp")) {
      const auto& d = j["ddp"];
      o.ddp.bucket_cap_bytes = d.value("bucket_cap_bytes", o.ddp.bucket_cap_bytes);
      o.ddp.first_bucket_bytes = d.value("first_bucket_bytes", o.ddp.first_bucket_bytes);
      o.ddp.find_unused_parameters = d.value("find_unused_parameters", o.ddp.find_unused_parameters);
    }
    o.scaling.num_workers = j.value("num_workers", o.scaling.num_workers);
    o.scaling.cpus_per_worker = j.value("cpus_per_worker", o.scaling.cpus_per_worker);
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(std::string("trainer options: ") + e.what());
  }
  o.validate();
  return o;
}

void TrainerOptions::validate() const {
  auto need = [](bool ok, const std::string& msg) {
    if (!ok) throw ConfigError(msg);
  };
  need(max_epochs >= 1, "max_epochs must be >= 1 (got " + std::to_string(max_epochs) + ")");
  need(max_steps == -1 || max_steps >= 1, "max_steps must be -1 or >= 1");
  need(limit_train_batches == -1 || limit_train_batches >= 1, "limit_train_batches must be -1 or >= 1");
  need(limit_val_batches >= -1, "limit_val_batches must be >= -1");
  need(check_val_every_n_epoch >= 1, "check_val_every_n_epoch must be >= 1");
  need(accumulate_grad_batches >= 1, "accumulate_grad_batches must be >= 1");
  need(gradient_clip_val >= 0, "gradient_clip_val must be >= 0");
  need(precision == "32" || precision == "bf16-mixed", "precision must be \"32\" or \"bf16-mixed\" (got \"" + precision + "\")");
  need(log_every_n_steps >= 1, "log_every_n_steps must be >= 1");
  need(strategy == "ddp", "unknown strategy '" + strategy + "' (available: ddp)");
  for (const auto& l : loggers) need(l == "csv" || l == "tensorboard", "unknown logger '" + l + "' (available: csv, tensorboard)");
  need(early_stopping.mode == "min" || early_stopping.mode == "max", "early_stopping.mode must be min or max");
  need(early_stopping.patience >= 1, "early_stopping.patience must be >= 1");
}

// ---------------------------------------------------------------- worker side
namespace {

uint64_t mix_seed(uint64_t seed, int rank, int64_t epoch) {  // seeds derive from (seed, rank, epoch)
  uint64_t h = seed * 0x9E3779B97F4A7C15ull ^ (uint64_t(rank) + 1) * 0xC2B2AE3D27D4EB4Full ^ (uint64_t(epoch) + 7) * 0x165667B19E3779F9ull;
  h ^= h >> 31;
  return h & 0x7fffffffffffull;
}

std::string format_line(int64_t epoch, int64_t epochs, int64_t batch, int64_t batches, int64_t step, double it_s,
                        const std::map<std::string, double>& shown) {
  std::ostringstream s;
  s << "epoch " << epoch + 1 << "/" << epochs << " batch " << batch << "/" << batches << " step " << step;
  for (auto& [k, v] : shown) s << " " << k << " " << std::setprecision(4) << v;
  s << " " << std::fixed << std::setprecision(1) << it_s << " it/s";
  if (it_s > 0) s << " eta " << int64_t(double(batches - batch) / it_s) << "s";
  return s.str();
}

}  // namespace

nlohmann::json Trainer::run(Module& m, const TrainerOptions& o, TaskContext& ctx) {
  o.validate();
  const int rank = ctx.rank(), n = ctx.world_size();
  if (o.deterministic) at::globalContext().setDeterministicAlgorithms(true, false);
  torch::manual_seed(mix_seed(o.seed, rank, -1));
  m.rank_ = rank;
  m.world_size_ = n;
  MetricSink sink;
  m.sink_ = &sink;

  DataLoaders dl = m.dataloaders();
  if (!dl.train) throw ConfigError("dataloaders(): no training dataset");
  if (dl.batch_size < 1) throw ConfigError("batch size must be at least 1 (got " + std::to_string(dl.batch_size) + ")");
  DataLoader train(dl.train, DistributedSampler(dl.train->size(), n, rank, dl.shuffle, o.seed), dl.batch_size);
  std::unique_ptr<DataLoader> val, test;
  if (dl.val) val = std::make_unique<DataLoader>(dl.val, DistributedSampler(dl.val->size(), n, rank, false), dl.batch_size);
  if (dl.test) test = std::make_unique<DataLoader>(dl.test, DistributedSampler(dl.test->size(), n, rank, false), dl.batch_size);
  Optimizers optim = m.configure_optimizers();
  if (!optim.optimizer) throw ConfigError("configure_optimizers(): no optimizer");

  Engine engine(ctx.comm());
  DDP strategy(o.ddp);
  strategy.setup(m, engine);
  std::vector<std::unique_ptr<Logger>> loggers;  // rank 0 writes
  if (rank == 0)
    for (const auto& name : o.loggers) {
      if (name == "csv") loggers.push_back(std::make_unique<CsvLogger>(o.default_root_dir));
      if (name == "tensorboard") loggers.push_back(std::make_unique<TensorBoardLogger>(o.default_root_dir + "/tensorboard"));
    }

  const bool bf16 = o.precision == "bf16-mixed";
  auto evaluate = [&](DataLoader& loader, bool is_test, int64_t limit) {
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
  };

  m.on_fit_start();
  const auto t0 = std::chrono::steady_clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  int64_t steps = 0, samples = 0, epochs_run = 0, bad_epochs = 0;
  double best = o.early_stopping.mode == "min" ? INFINITY : -INFINITY;
  std::map<std::string, double> last;
  bool stop = false;
  for (int64_t epoch = 0; epoch < o.max_epochs && !stop; ++epoch) {
    torch::manual_seed(mix_seed(o.seed, rank, epoch));
    train.set_epoch(epoch);
    m.train();
    m.on_train_epoch_start(epoch);
    const int64_t nb = o.limit_train_batches < 0 ? train.batches_per_epoch()
                                                  : std::min(o.limit_train_batches, train.batches_per_epoch());
    auto it = train.epoch();
    strategy.zero_grad();
    auto window_start = std::chrono::steady_clock::now();
    int64_t window_steps = 0;
    for (int64_t b = 0; b < nb; ++b) {
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
      if (o.max_steps > 0 && steps >= o.max_steps) {
        stop = true;
        break;
      }
    }
    m.on_train_epoch_end(epoch);
    if (val && (epoch + 1) % o.check_val_every_n_epoch == 0) {
      evaluate(*val, false, o.limit_val_batches);
      m.on_validation_epoch_end(epoch);
    }
    last = sink.reduce_epoch(engine);
    ++epochs_run;
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
      const bool better = o.early_stopping.mode == "min" ? f->second < best - o.early_stopping.min_delta
                                                         : f->second > best + o.early_stopping.min_delta;
      if (better) {
        best = f->second;
        bad_epochs = 0;
      } else if (++bad_epochs >= o.early_stopping.patience) {
        stop = true;
        if (rank == 0) ctx.log("early stopping: " + o.early_stopping.monitor + " did not improve for " + std::to_string(bad_epochs) + " epochs");
      }
    }
  }
  const double wall = seconds();
  if (test && o.run_test) {
    evaluate(*test, true, -1);
    for (auto& [k, v] : sink.reduce_epoch(engine)) last[k] = v;
  }
  m.on_fit_end();
  // Global throughput: every rank trained `samples` examples in about `wall` seconds.
  int64_t all_samples = samples;
  engine.allreduce(&all_samples, 1, DType::Int64, ReduceOp::Sum).wait();
  last["epochs"] = double(epochs_run);
  last["steps"] = double(steps);
  last["wall_s"] = wall;
  last["samples_per_s"] = wall > 0 ? double(all_samples) / wall : 0;
  if (!o.early_stopping.monitor.empty()) last["early_stopping_best"] = best;
  for (auto& [k, v] : last) ctx.report_metric(k, v);
  return nlohmann::json(last);
}

// ---------------------------------------------------------------- driver side
namespace {
nlohmann::json fit_entry(TaskContext& ctx, const nlohmann::json& p) {
  const TrainerOptions o = TrainerOptions::from_json(p.at("trainer"));
  // LibTorch's default generator starts from a random seed: seed it before the module builds its
  // layers, the same on every rank, so initialisation is reproducible (DDP then broadcasts rank 0's).
  torch::manual_seed(mix_seed(o.seed, -1, -1));
  auto module = create_module(p.at("module"), p.value("config", Config::object()));
  return Trainer::run(*module, o, ctx);
}
MPITRAIN_REGISTER_ENTRY_POINT("mpitrain.fit", fit_entry);
}  // namespace

Trainer::Trainer(TrainerOptions options) : opts_(std::move(options)) { opts_.validate(); }

Result Trainer::fit(const std::string& module_name, const Config& given) const {
  const Config config = given.is_null() ? Config::object() : given;  // fit<M>({}) passes null
  create_module(module_name, config);  // unknown names and bad configs fail here, before any spawn
  LaunchOptions lo;
  lo.mode = opts_.mode;
  lo.throw_on_error = opts_.throw_on_error;
  return launch("mpitrain.fit", {{"module", module_name}, {"config", config}, {"trainer", opts_.to_json()}}, opts_.scaling, lo);
}

}  // namespace mpitrain
