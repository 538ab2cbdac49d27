// Tuner: Ray Tune's `Tuner(trainable, param_space=..., tune_config=...).fit()` for C++, over any
// registered Module. The driver expands the space into trials (the same plan, directory layout,
// schedulers and results as `mpitrain-sweep run`) and runs each trial as a process of this same
// executable, re-run with the same argv and MPITRAIN_TUNE_TRIAL=DIR:ID in its environment: in
// that process, fit() runs the trainable on the trial's config, writes the trial's result and
// exits. So a program written as
//
//   int main(int argc, char** argv) {
//     mpitrain::Runtime rt(argc, argv);
//     tune::Tuner tuner(train_one, space, tune_config, run_config);
//     tune::ResultGrid grid = tuner.fit();  // a trial's process never returns from here
//     std::cout << grid.best_result().config << "\n";
//   }
//
// is the whole sweep: each trial is a spawn-mode job of `workers_per_trial` workers, as many at
// once as the slots allow, resumable, with ASHA deciding from the trials' reports.
#pragma once
#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "mpitrain/train/trainer.hpp"
#include "mpitrain/tune/asha.hpp"
#include "mpitrain/tune/sweep.hpp"

namespace mpitrain::tune {

struct TuneConfig {
  std::string metric;             ///< what trials are ranked by (and ASHA decides on)
  std::string mode = "min";       ///< min | max
  int num_samples = 1;            ///< random samples (times every grid_search combination)
  uint64_t seed = 0;              ///< the same seed gives the same trials
  std::string scheduler = "fifo"; ///< fifo | asha
  AshaOptions asha;               ///< metric and mode are copied from above
  std::string report_on = "validation_end";          ///< or train_epoch_end
  std::map<std::string, std::string> report_metrics; ///< reported name -> epoch metric (empty: all)
  bool checkpoint_every_report = false;              ///< a checkpoint with every report (TuneReport's)
};

struct TuneRunConfig {
  std::string dir;                ///< the sweep directory: plan, trials/ID/..., results
  int slots = 0;                  ///< 0: the allocation's (SLURM_CPUS_ON_NODE x nodes, else CPUs)
  int workers_per_trial = 1, cpus_per_worker = 1;
  std::function<void(const std::string&)> log;  ///< one line per change (default: stdout)
};

/// What the trainable gets in a trial's process.
struct TrialContext {
  std::string sweep_dir, id, dir;  ///< dir: the trial's own (logs, metrics.csv, checkpoints)
  nlohmann::json config;           ///< this trial's sampled hyperparameters
  TuneConfig tune;
  TuneRunConfig run;
  /// `base` made this trial's: default_root_dir = dir, the trial's workers and CPUs, and the
  /// tune_report callback appended. Fit it with ckpt_path "auto" so a restarted sweep resumes.
  TrainerOptions trainer_options(TrainerOptions base = {}) const;
};

using Trainable = std::function<FitResult(const TrialContext&)>;

class ResultGrid {
 public:
  ResultGrid(std::vector<TrialResult> results, std::string metric, std::string mode, int errors)
      : results_(std::move(results)), metric_(std::move(metric)), mode_(std::move(mode)), errors_(errors) {}
  const std::vector<TrialResult>& results() const { return results_; }
  size_t size() const { return results_.size(); }
  int num_errors() const { return errors_; }
  /// The best trial by its last `metric` (defaults: the TuneConfig's); ConfigError if none reported it.
  const TrialResult& best_result(const std::string& metric = "", const std::string& mode = "") const;

 private:
  std::vector<TrialResult> results_;
  std::string metric_, mode_;
  int errors_;
};

class Tuner {
 public:
  /// ConfigError for a bad space or config (before any trial starts).
  Tuner(Trainable trainable, nlohmann::json param_space, TuneConfig tune, TuneRunConfig run);
  /// Driver: runs every unfinished trial and returns the results. Trial process: runs its trial
  /// and exits the process with FitResult::exit_code().
  ResultGrid fit();
  const SweepPlan& plan() const { return plan_; }

 private:
  [[noreturn]] void run_trial(const std::string& id) const;
  Trainable trainable_;
  TuneConfig tune_;
  TuneRunConfig run_;
  SweepPlan plan_;
};

}  // namespace mpitrain::tune
