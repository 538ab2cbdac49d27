#include "mpitrain/train/trainer.hpp"

#include <torch/torch.h>

#include <iostream>

#include "hdf5_io/checkpoint_file.hpp"
#include "mpitrain/launch/registry.hpp"
#include "mpitrain/launch/runtime.hpp"
#include "seeds.hpp"

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
          {"checkpoint", checkpoint.to_json()},
          {"failure", {{"max_failures", failure.max_failures}}},
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
    if (j.contains("checkpoint")) o.checkpoint = ModelCheckpointOptions::from_json(j["checkpoint"]);
    if (j.contains("failure")) o.failure.max_failures = j["failure"].value("max_failures", 0);
    o.scaling.num_workers = j.value("num_workers", o.scaling.num_workers);
    o.scaling.cpus_per_worker = j.value("cpus_per_worker", o.scaling.cpus_per_worker);
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(std::string("trainer options: ") + e.what());
  }
  o.validate();
  return o;
}

std::string TrainerOptions::checkpoint_dir() const {
  return checkpoint.dirpath.empty() ? default_root_dir + "/checkpoints" : checkpoint.dirpath;
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
  need(failure.max_failures >= 0, "failure.max_failures must be >= 0");
  checkpoint.validate();
}

// ---------------------------------------------------------------- driver side
namespace {

std::shared_ptr<Module> build_module(const nlohmann::json& p, const TrainerOptions& o) {
  // LibTorch's default generator starts from a random seed: seed it before the module builds its
  // layers, the same on every rank, so initialisation is reproducible (DDP then broadcasts rank 0's).
  torch::manual_seed(detail::mix_seed(o.seed, -1, -1));
  return create_module(p.at("module"), p.value("config", Config::object()));
}

nlohmann::json fit_entry(TaskContext& ctx, const nlohmann::json& p) {
  const TrainerOptions o = TrainerOptions::from_json(p.at("trainer"));
  auto module = build_module(p, o);
  return Trainer::run(*module, o, ctx, {p.at("module"), p.value("config", Config::object()), p.value("ckpt_path", "")});
}
MPITRAIN_REGISTER_ENTRY_POINT("mpitrain.fit", fit_entry);

nlohmann::json evaluate_entry(TaskContext& ctx, const nlohmann::json& p) {
  const TrainerOptions o = TrainerOptions::from_json(p.at("trainer"));
  auto module = build_module(p, o);
  return Trainer::evaluate(*module, o, ctx, p.at("stage"), p.value("ckpt_path", ""));
}
MPITRAIN_REGISTER_ENTRY_POINT("mpitrain.evaluate", evaluate_entry);

}  // namespace

Trainer::Trainer(TrainerOptions options) : opts_(std::move(options)) { opts_.validate(); }


Result Trainer::fit(const std::string& module_name, const Config& given, const std::string& ckpt_path) const {
  const Config config = given.is_null() ? Config::object() : given;  // fit<M>({}) passes null
  create_module(module_name, config);  // unknown names and bad configs fail here, before any spawn
  LaunchOptions lo;
  lo.mode = opts_.mode;
  nlohmann::json payload = {{"module", module_name}, {"config", config}, {"trainer", opts_.to_json()}, {"ckpt_path", ckpt_path}};
  std::vector<std::string> failures;
  Result r;
  for (;;) {
    const std::string latest_before = hdf5_io::read_latest(checkpoint_dir());
    r = launch("mpitrain.fit", payload, opts_.scaling, lo);
    // Bad input fails the same way every time: only a crash or a dead worker is worth a relaunch.
    const bool retryable = !r.ok() && r.error_kind != "config" && r.error_kind != "checkpoint";
    if (r.ok() || !retryable || int(failures.size()) >= opts_.failure.max_failures || Runtime::current() == nullptr ||
        Runtime::current()->role() == Role::Spmd)
      break;
    failures.push_back(r.error);
    std::cerr << "mpitrain: job failed (" << r.error << "); relaunching from the latest checkpoint (failure "
              << failures.size() << " of at most " << opts_.failure.max_failures << ")\n";
    // Resume from what this attempt wrote; if it wrote nothing, start again as it started (never
    // from an older run's checkpoint that happens to be in the same directory).
    const std::string latest_now = hdf5_io::read_latest(checkpoint_dir());
    if (!latest_now.empty() && latest_now != latest_before) payload["ckpt_path"] = latest_now;
  }
  r.failures = std::move(failures);
  if (opts_.throw_on_error && !r.ok()) throw WorkerFailure(r.error, r.failed_rank);
  return r;
}

Result Trainer::launch_stage(const std::string& stage, const std::string& module_name, const Config& given,
                             const std::string& ckpt_path) const {
  const Config config = given.is_null() ? Config::object() : given;
  create_module(module_name, config);
  LaunchOptions lo;
  lo.mode = opts_.mode;
  lo.throw_on_error = opts_.throw_on_error;
  return launch("mpitrain.evaluate",
                {{"module", module_name}, {"config", config}, {"trainer", opts_.to_json()}, {"ckpt_path", ckpt_path},
                 {"stage", stage}},
                opts_.scaling, lo);
}

Result Trainer::validate(const std::string& module_name, const Config& config, const std::string& ckpt_path) const {
  return launch_stage("validate", module_name, config, ckpt_path);
}

Result Trainer::test(const std::string& module_name, const Config& config, const std::string& ckpt_path) const {
  return launch_stage("test", module_name, config, ckpt_path);
}

}  // namespace mpitrain
