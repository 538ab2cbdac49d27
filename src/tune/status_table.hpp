// The sweep's live status table (Ray Tune's "== Status ==" block): one row per trial with its
// status, iterations, last value of the metric and config, read from the trial's progress.jsonl.
#pragma once
#include <nlohmann/json.hpp>

#include <map>
#include <string>

#include "mpitrain/tune/sweep.hpp"

namespace mpitrain::tune::detail {

/// `status` maps trial id -> status (pending, running, finished, stopped, failed); trials not in
/// it are pending. Rows are cut to `width` columns.
std::string status_table(const std::string& dir, const SweepPlan& plan, const std::map<std::string, std::string>& status,
                         size_t width = 120);

}  // namespace mpitrain::tune::detail
