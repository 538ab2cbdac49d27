// FunctionTrainer: the driver side (checks, launches, relaunches, the Result from the run
// directory's record) and the workers' entry point that runs the registered function in a Session.
#include "mpitrain/train/loop/function_trainer.hpp"

#include <iostream>

#include "../launch_options_of.hpp"
#include "../rank_agreement.hpp"
#include "mpitrain/detail/json_number.hpp"
#include "mpitrain/detail/named_registry.hpp"
#include "mpitrain/launch/registry.hpp"
#include "mpitrain/launch/runtime.hpp"
#include "session_state.hpp"

namespace mpitrain::loop {

using nlohmann::json;

namespace {

mpitrain::detail::NamedRegistry<TrainLoop>& loops() {
  static mpitrain::detail::NamedRegistry<TrainLoop> r("training function");
  return r;
}

bool spmd() { return Runtime::current() && Runtime::current()->role() == Role::Spmd; }

ReportedCheckpoint reported(const detail::CheckpointManager& m, const detail::ManifestEntry& e) {
  return {m.path_of(e), e.index, e.metrics};
}

// What the run directory records: the latest checkpoint and the kept ones, best first.
void read_checkpoints(Result& r, const CheckpointConfig& cfg) {
  if (r.path.empty()) return;
  try {
    detail::CheckpointManager m(r.path, cfg);
    if (auto l = m.latest()) r.checkpoint = reported(m, *l);
    for (const auto& e : m.best()) r.best_checkpoints.push_back(reported(m, e));
  } catch (const Error& e) {
    if (r.ok()) {
      r.error = e.what();
      r.error_kind = error_kind_of(e);
    }
  }
}

// Worker side: the function in a Session; rank 0's last report travels back in the value.
json train_loop_entry(TaskContext& ctx, const json& p) {
  const TrainLoop fn = find_train_loop(p.at("loop"));
  if (!fn) throw ConfigError("unknown training function '" + p.at("loop").get<std::string>() + "'");
  detail::Session session(ctx, p);
  try {
    fn(p.value("config", json::object()));
  } catch (const std::exception&) {
    mpitrain::detail::fail_fast_unless_agreed(ctx.env().role == Role::Spmd);
    throw;
  }
  return {{"path", session.context().run_dir}, {"metrics", mpitrain::detail::json_numbers(session.last_metrics())}};
}
MPITRAIN_REGISTER_ENTRY_POINT("mpitrain.train_loop", train_loop_entry);

}  // namespace

bool register_train_loop(const std::string& name, TrainLoop fn) {
  loops().add(name, std::move(fn));
  return true;
}
TrainLoop find_train_loop(const std::string& name) { return loops().find(name); }
std::vector<std::string> train_loop_names() { return loops().names(); }

FunctionTrainer::FunctionTrainer(std::string train_loop, json config, ScalingConfig scaling, RunConfig run,
                                 std::string resume_from_checkpoint)
    : loop_(std::move(train_loop)), config_(config.is_null() ? json::object() : std::move(config)),
      scaling_(scaling), run_(std::move(run)), resume_(std::move(resume_from_checkpoint)) {
  if (!find_train_loop(loop_))
    throw ConfigError("unknown training function '" + loop_ + "' (registered: " + loops().names_text() + ")");
  validate(run_.checkpoint_config);
  if (run_.storage_path.empty()) throw ConfigError("run_config.storage_path is empty");
  if (run_.failure_config.max_failures < 0)
    throw ConfigError("failure_config.max_failures must be at least 0 (got " +
                      std::to_string(run_.failure_config.max_failures) + ")");
  if (!resume_.empty()) Checkpoint::load(resume_);  // a missing or foreign file fails here, before any spawn
}

Result FunctionTrainer::fit() const {
  detail::take_last_run_dir();
  json payload = {{"loop", loop_},       {"config", config_},
                  {"name", run_.name},   {"storage_path", run_.storage_path},
                  {"checkpoint_config", run_.checkpoint_config},
                  {"resume", resume_},   {"attempt", 0}};
  std::string dir;
  if (!spmd()) {  // a lone driver settles the name, so that a relaunch continues in the same directory
    const std::string name = run_.name.empty() ? detail::default_run_name(loop_) : run_.name;
    dir = run_.storage_path + "/" + name;
    detail::prepare_run_dir(dir, !resume_.empty());
    payload["name"] = name;
  }
  Result r;
  for (;;) {
    mpitrain::Result job;
    try {
      job = launch("mpitrain.train_loop", payload, scaling_, mpitrain::detail::launch_options_of(run_));
    } catch (const Error& e) {  // SPMD: an agreed failure propagates on every rank
      if (!spmd()) throw;
      job.error = e.what();
      job.error_kind = error_kind_of(e);
    }
    r.error = job.error;
    r.error_kind = job.error_kind;
    r.failed_rank = job.failed_rank;
    r.metrics = job.metrics;
    if (job.ok()) {
      r.metrics = mpitrain::detail::numbers_from_json(job.value.value("metrics", json::object()));
      dir = job.value.value("path", dir);
    }
    if (dir.empty()) dir = detail::take_last_run_dir();
    const bool retryable = !job.ok() && !is_bad_input(job.error_kind);
    if (job.ok() || !retryable || int(r.failures.size()) >= run_.failure_config.max_failures || spmd()) break;
    r.failures.push_back(job.error);
    std::cerr << "mpitrain: job failed (" << job.error << "); relaunching from the last reported checkpoint (failure "
              << r.failures.size() << " of at most " << run_.failure_config.max_failures << ")\n";
    try {
      detail::CheckpointManager m(dir, run_.checkpoint_config);
      if (auto l = m.latest()) payload["resume"] = m.path_of(*l);
    } catch (const Error& e) {  // the record cannot be read: no relaunch from an unknown state
      r.error = std::string("cannot relaunch: ") + e.what() + " (after: " + job.error + ")";
      r.error_kind = error_kind_of(e);
      break;
    }
    payload["attempt"] = int(r.failures.size());
  }
  r.path = dir;
  read_checkpoints(r, run_.checkpoint_config);
  return r;
}

}  // namespace mpitrain::loop
