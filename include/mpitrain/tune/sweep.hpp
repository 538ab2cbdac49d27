// A sweep in one allocation (DESIGN §3 Sweeps; `mpitrain-sweep run`): the plan (search space
// expanded into trials, DIR/sweep.json) and a driver that runs each trial as its own process —
// a spawn-mode job of W workers x C CPUs — as many at once as the slots allow. Everything lives
// in the sweep directory, so a sweep killed midway and restarted with the same directory skips
// finished trials and resumes unfinished ones (their own --resume auto), and Slurm array tasks
// can share it. A failed trial is recorded with its error, never fatal to the sweep.
#pragma once
#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

#include "mpitrain/tune/asha.hpp"

namespace mpitrain::tune {

struct SweepPlan {
  nlohmann::json space;
  int num_samples = 1;
  uint64_t seed = 0;
  std::string metric, mode = "min";
  std::string scheduler = "fifo";  ///< fifo | asha
  AshaOptions asha;                 ///< metric/mode copied from the plan
  int workers_per_trial = 1, cpus_per_worker = 1;
  std::vector<std::string> trial_args;  ///< passed to every trial
  std::vector<nlohmann::json> trials;   ///< {"id": "t0000", "config": {...}}
};

/// Expands `plan.space` into plan.trials (seeded). ConfigError for a bad space or options.
void expand(SweepPlan& plan);
/// DIR/sweep.json: written once; a restart must ask for the same sweep (ConfigError otherwise).
void save_or_check_plan(const std::string& dir, const SweepPlan& plan);
SweepPlan load_plan(const std::string& dir);

/// argv of one trial's process.
using TrialCommand = std::function<std::vector<std::string>(const nlohmann::json& trial)>;

struct RunOptions {
  int slots = 0;  ///< 0: the allocation's (SLURM_CPUS_ON_NODE, else this machine's CPUs)
  std::function<void(const std::string&)> log;  ///< one line per change (default: stdout)
  /// Extra environment ("NAME=value") of a trial's process (the Tuner marks its trials so).
  std::function<std::vector<std::string>(const nlohmann::json& trial)> trial_env;
  /// Redraw a status table (trial, status, config, last metric, iterations) on every change and
  /// every second; default: when stdout is a terminal. Off: one line per change (Slurm logs).
  int live_table = -1;
};

/// Runs every unfinished trial; returns the number that failed.
int run_sweep(const std::string& dir, const SweepPlan& plan, const TrialCommand& command, const RunOptions& options);

/// One row of the results: config, status, iterations, last and best metrics, wall time, checkpoint.
struct TrialResult {
  std::string id, status, error, checkpoint;
  nlohmann::json config, last, best;
  int64_t iterations = 0;
  double wall_s = 0;
};
/// Reads every trial's files, writes DIR/results.csv and DIR/results.json; sorted by trial id.
std::vector<TrialResult> collect(const std::string& dir);
/// The best trial by its last value of `metric` (Tune's scope "last"); null if none reported it.
const TrialResult* best_trial(const std::vector<TrialResult>& results, const std::string& metric, const std::string& mode);
/// Slots of this allocation: SLURM_CPUS_ON_NODE x nodes if set, else online CPUs.
int allocation_slots();

}  // namespace mpitrain::tune
