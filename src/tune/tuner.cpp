// Tuner: the sweep driver and the trial side of the same executable (tuner.hpp).
#include "mpitrain/tune/tuner.hpp"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "mpitrain/detail/json_number.hpp"
#include "mpitrain/errors.hpp"
#include "mpitrain/tune/tune_report.hpp"

namespace mpitrain::tune {

namespace {
using nlohmann::json;
namespace fs = std::filesystem;

constexpr const char* kTrialEnv = "MPITRAIN_TUNE_TRIAL";

// This process's argv, to start trials as the same program with the same options.
std::vector<std::string> own_argv() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::vector<std::string> argv;
  std::string a;
  while (std::getline(in, a, '\0')) argv.push_back(a);
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec || argv.empty()) throw Error("Tuner: cannot read this program's command line from /proc/self");
  argv[0] = exe.string();
  return argv;
}

void write_json(const std::string& file, const json& j) {
  const std::string tmp = file + ".tmp";
  std::ofstream(tmp) << j.dump(2) << "\n";
  fs::rename(tmp, file);
}
}  // namespace

TrainerOptions TrialContext::trainer_options(TrainerOptions base) const {
  base.default_root_dir = dir;
  base.scaling.num_workers = run.workers_per_trial;
  base.scaling.cpus_per_worker = run.cpus_per_worker;
  TuneReportOptions report;
  report.dir = sweep_dir;
  report.trial = id;
  report.metrics = tune.report_metrics;
  report.on = tune.report_on;
  report.scheduler = tune.scheduler;
  report.asha = tune.asha;
  report.checkpoint = tune.checkpoint_every_report;
  base.callbacks.push_back({"tune_report", json(report)});
  return base;
}

const TrialResult& ResultGrid::best_result(const std::string& metric, const std::string& mode) const {
  const std::string m = metric.empty() ? metric_ : metric, o = mode.empty() ? mode_ : mode;
  const TrialResult* best = best_trial(results_, m, o);
  if (!best) throw ConfigError("no trial reported metric '" + m + "' (" + std::to_string(results_.size()) + " trials)");
  return *best;
}

Tuner::Tuner(Trainable trainable, nlohmann::json param_space, TuneConfig tune, TuneRunConfig run)
    : trainable_(std::move(trainable)), tune_(std::move(tune)), run_(std::move(run)) {
  if (!trainable_) throw ConfigError("Tuner: no trainable");
  if (run_.dir.empty()) throw ConfigError("Tuner: TuneRunConfig::dir (the sweep directory) must be set");
  if (tune_.metric.empty()) throw ConfigError("Tuner: TuneConfig::metric must be set");
  if (run_.workers_per_trial < 1 || run_.cpus_per_worker < 1)
    throw ConfigError("Tuner: workers_per_trial and cpus_per_worker must be >= 1");
  tune_.asha.metric = tune_.metric;
  tune_.asha.mode = tune_.mode;
  plan_.space = std::move(param_space);
  plan_.num_samples = tune_.num_samples;
  plan_.seed = tune_.seed;
  plan_.metric = tune_.metric;
  plan_.mode = tune_.mode;
  plan_.scheduler = tune_.scheduler;
  plan_.asha = tune_.asha;
  plan_.workers_per_trial = run_.workers_per_trial;
  plan_.cpus_per_worker = run_.cpus_per_worker;
  plan_.trial_args = {"(tuner)"};  // trials are this program; recorded so `status`/`collect` work
  expand(plan_);  // ConfigError for a bad space, mode, scheduler or ASHA option
  TuneReportOptions probe;  // the report options every trial will use, checked up front
  probe.dir = run_.dir;
  probe.trial = "t";
  probe.on = tune_.report_on;
  probe.scheduler = tune_.scheduler;
  probe.asha = tune_.asha;
  probe.validate();
}

ResultGrid Tuner::fit() {
  if (const char* t = std::getenv(kTrialEnv)) {
    const std::string spec = t;
    const size_t colon = spec.rfind(':');
    if (colon != std::string::npos && spec.substr(0, colon) == run_.dir) run_trial(spec.substr(colon + 1));
  }
  save_or_check_plan(run_.dir, plan_);
  const std::vector<std::string> argv = own_argv();
  RunOptions ro;
  ro.slots = run_.slots;
  ro.log = run_.log;
  ro.trial_env = [this](const json& trial) {
    return std::vector<std::string>{std::string(kTrialEnv) + "=" + run_.dir + ":" + trial.at("id").get<std::string>()};
  };
  const int failed = run_sweep(run_.dir, plan_, [&argv](const json&) { return argv; }, ro);
  return ResultGrid(collect(run_.dir), tune_.metric, tune_.mode, failed);
}

void Tuner::run_trial(const std::string& id) const {
  const json* trial = nullptr;
  for (const auto& t : plan_.trials)
    if (t.at("id") == id) trial = &t;
  if (!trial) {
    std::fprintf(stderr, "mpitrain-trial: no trial %s in the sweep %s\n", id.c_str(), run_.dir.c_str());
    std::exit(2);
  }
  TrialContext ctx{run_.dir, id, trial_dir(run_.dir, id), trial->at("config"), tune_, run_};
  int code = 1;
  try {
    fs::create_directories(ctx.dir);
    const FitResult r = trainable_(ctx);
    write_json(ctx.dir + "/result.json", {{"status", r.ok() ? "ok" : "failed"},
                                          {"metrics", detail::json_numbers(r.metrics)},
                                          {"checkpoint", r.checkpoint},
                                          {"error", r.error}});
    if (!r.ok()) std::fprintf(stderr, "mpitrain-trial: %s\n", r.error.c_str());
    code = r.exit_code();
  } catch (const Error& e) {
    std::fprintf(stderr, "mpitrain-trial: %s\n", e.what());
    code = exit_code_for(error_kind_of(e));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mpitrain-trial: %s\n", e.what());
  }
  std::fflush(stdout);
  std::fflush(stderr);
  std::exit(code);
}

}  // namespace mpitrain::tune
