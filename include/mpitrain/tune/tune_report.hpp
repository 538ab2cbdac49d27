// The sweep's report callback ("tune_report", Ray Tune's TuneReportCallback): at each
// validation end (or train epoch end) rank 0 appends the trial's metrics, renamed by `metrics`
// ({reported name: epoch metric}; empty: every epoch metric under its own name), to
// DIR/trials/TRIAL/progress.jsonl, the same values fit() reports; with the ASHA scheduler it
// asks the sweep's rung records whether to go on, and every rank stops alike at this epoch's
// end when told to (the trial keeps its last checkpoint; a `stopped.json` marks it).
#pragma once
#include <nlohmann/json.hpp>

#include <map>
#include <string>

#include "mpitrain/tune/asha.hpp"

namespace mpitrain::tune {

struct TuneReportOptions {
  std::string dir;                            ///< the sweep directory
  std::string trial;                          ///< trial id, e.g. "t0003"
  std::map<std::string, std::string> metrics; ///< reported name -> epoch metric
  std::string on = "validation_end";          ///< validation_end | train_epoch_end
  std::string scheduler = "fifo";             ///< fifo | asha
  AshaOptions asha;
  /// A checkpoint with every report (Tune's `TuneReportCheckpointCallback`); its path is recorded
  /// in the report. Off: the trial's own ModelCheckpoint settings decide.
  bool checkpoint = false;
  /// ConfigError naming the option.
  void validate() const;
  static TuneReportOptions from_json(const nlohmann::json& j);
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TuneReportOptions, dir, trial, metrics, on, scheduler, asha, checkpoint)

/// Where a trial's files live in the sweep directory.
std::string trial_dir(const std::string& sweep_dir, const std::string& trial);

}  // namespace mpitrain::tune
