// The sweep's plan: trials expanded once from the space and kept in DIR/sweep.json.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "mpitrain/errors.hpp"
#include "mpitrain/tune/search_space.hpp"
#include "mpitrain/tune/sweep.hpp"

namespace mpitrain::tune {

namespace {
using nlohmann::json;

json to_json(const SweepPlan& p) {
  return {{"space", p.space},         {"num_samples", p.num_samples},       {"seed", p.seed},
          {"metric", p.metric},       {"mode", p.mode},                     {"scheduler", p.scheduler},
          {"asha", p.asha},           {"workers_per_trial", p.workers_per_trial},
          {"cpus_per_worker", p.cpus_per_worker}, {"trial_args", p.trial_args}, {"trials", p.trials}};
}
}  // namespace

void expand(SweepPlan& plan) {
  if (plan.metric.empty()) throw ConfigError("--metric must be set");
  if (plan.mode != "min" && plan.mode != "max") throw ConfigError("--mode must be min or max (got '" + plan.mode + "')");
  if (plan.scheduler != "fifo" && plan.scheduler != "asha")
    throw ConfigError("--scheduler must be fifo or asha (got '" + plan.scheduler + "')");
  if (plan.workers_per_trial < 1 || plan.cpus_per_worker < 1)
    throw ConfigError("--workers-per-trial and --cpus-per-worker must be at least 1");
  plan.asha.metric = plan.metric;
  plan.asha.mode = plan.mode;
  if (plan.scheduler == "asha") plan.asha.validate();
  const auto configs = SearchSpace::from_json(plan.space).generate(plan.num_samples, plan.seed);
  plan.trials.clear();
  for (size_t i = 0; i < configs.size(); ++i) {
    char id[32];
    std::snprintf(id, sizeof id, "t%04zu", i);
    plan.trials.push_back({{"id", id}, {"config", configs[i]}});
  }
}

void save_or_check_plan(const std::string& dir, const SweepPlan& plan) {
  namespace fs = std::filesystem;
  const std::string file = dir + "/sweep.json";
  const json mine = to_json(plan);
  if (fs::exists(file)) {
    json theirs;
    try {
      theirs = json::parse(std::ifstream(file));
    } catch (const json::exception& e) {
      throw ConfigError(file + " is not a sweep plan (" + std::string(e.what()) + ")");
    }
    if (theirs != mine)
      throw ConfigError(dir + " holds a different sweep (space, samples, seed, scheduler or trial options differ): "
                              "use a new --dir, or the same options to resume it");
    return;
  }
  fs::create_directories(dir);
  const std::string tmp = file + ".tmp";
  std::ofstream(tmp) << mine.dump(2) << "\n";
  fs::rename(tmp, file);
}

SweepPlan load_plan(const std::string& dir) {
  const std::string file = dir + "/sweep.json";
  std::ifstream in(file);
  if (!in) throw ConfigError(dir + " is not a sweep directory (no sweep.json)");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    throw ConfigError(file + " is not a sweep plan (" + std::string(e.what()) + ")");
  }
  SweepPlan p;
  p.space = j.at("space");
  p.num_samples = j.at("num_samples");
  p.seed = j.at("seed");
  p.metric = j.at("metric");
  p.mode = j.at("mode");
  p.scheduler = j.at("scheduler");
  p.asha = j.at("asha").get<AshaOptions>();
  p.workers_per_trial = j.at("workers_per_trial");
  p.cpus_per_worker = j.at("cpus_per_worker");
  p.trial_args = j.at("trial_args").get<std::vector<std::string>>();
  p.trials = j.at("trials").get<std::vector<json>>();
  return p;
}

}  // namespace mpitrain::tune
