// TrainerOptions <-> JSON (one definition: the NLOHMANN_DEFINE_TYPE lists in trainer.hpp) and
// validation, which names the option at fault.
#include <cmath>

#include "mpitrain/detail/json_options.hpp"
#include "mpitrain/train/placement.hpp"
#include "mpitrain/train/trainer.hpp"

namespace mpitrain {

namespace {
const char* const kModes[] = {"auto", "spawn", "spmd"};  // LaunchMode's order
}

void to_json(nlohmann::json& j, const LaunchMode& m) { j = kModes[int(m)]; }

void from_json(const nlohmann::json& j, LaunchMode& m) {
  for (int i = 0; i < 3; ++i)
    if (j == kModes[i]) {
      m = LaunchMode(i);
      return;
    }
  throw ConfigError("trainer options: mode must be \"auto\", \"spawn\" or \"spmd\" (got " + j.dump() + ")");
}

nlohmann::json TrainerOptions::to_json() const { return *this; }

TrainerOptions TrainerOptions::from_json(const nlohmann::json& j) {
  TrainerOptions o = detail::options_from_json<TrainerOptions>(j, "trainer options");
  if (j.is_object() && j.contains("callbacks"))  // list elements are free-form to the checker: check each
    for (const auto& c : j["callbacks"]) detail::check_options(c, nlohmann::json(CallbackSpec{}), "trainer options: callback");
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
  need(gradient_clip_val >= 0 && std::isfinite(gradient_clip_val), "gradient_clip_val must be >= 0 and finite");
  need(precision == "32" || precision == "bf16-mixed", "precision must be \"32\" or \"bf16-mixed\" (got \"" + precision + "\")");
  parse_memory_format(memory_format);
  need(log_every_n_steps >= 1, "log_every_n_steps must be >= 1");
  need(comm_timeout_s > 0 && comm_timeout_s < 1e7, "comm_timeout_s must be > 0 (seconds)");
  need(liveness_timeout_s == 0 || (liveness_timeout_s >= 1 && liveness_timeout_s < 1e7),
       "liveness_timeout_s must be 0 (off) or at least 1 (seconds; heartbeats come every 250 ms to 1 s)");
  need(startup_timeout_s > 0 && startup_timeout_s < 1e7, "startup_timeout_s must be > 0 (seconds)");
  for (const auto& l : loggers) need(l == "csv" || l == "tensorboard", "unknown logger '" + l + "' (available: csv, tensorboard)");
  early_stopping.validate();
  need(failure.max_failures >= 0, "failure.max_failures must be >= 0");
  checkpoint.validate();
  create_strategy(strategy);  // unknown names and bad strategy options fail here, before any spawn
  for (const auto& c : callbacks) create_callback(c);
}

}  // namespace mpitrain
