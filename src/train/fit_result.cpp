#include "mpitrain/train/fit_result.hpp"

#include "mpitrain/detail/json_number.hpp"

namespace mpitrain {

const char* fit_status_name(FitStatus s) {
  switch (s) {
    case FitStatus::Completed: return "completed";
    case FitStatus::Preempted: return "preempted";
    case FitStatus::Failed: return "failed";
  }
  return "failed";
}

int FitResult::exit_code() const {
  if (status == FitStatus::Preempted) return kExitPreempted;
  return status == FitStatus::Failed ? std::max(1, exit_code_for(error_kind)) : 0;
}

nlohmann::json to_json(const FitResult& r) {
  return {{"status", fit_status_name(r.status)},
          {"metrics", detail::json_numbers(r.metrics)},
          {"stats",
           {{"epochs", r.stats.epochs},
            {"steps", r.stats.steps},
            {"samples", r.stats.samples},
            {"wall_s", r.stats.wall_s},
            {"samples_per_s", r.stats.samples_per_s},
            {"strategy", detail::json_numbers(r.stats.strategy)}}},
          {"checkpoint", r.checkpoint},
          {"best_checkpoint", r.best_checkpoint},
          {"signal", r.signal}};
}

FitResult fit_result_from_json(const nlohmann::json& j) {
  FitResult r;
  const std::string status = j.value("status", "completed");
  r.status = status == "preempted" ? FitStatus::Preempted : status == "failed" ? FitStatus::Failed : FitStatus::Completed;
  r.metrics = detail::numbers_from_json(j.value("metrics", nlohmann::json::object()));
  const nlohmann::json s = j.value("stats", nlohmann::json::object());
  r.stats.epochs = s.value("epochs", int64_t(0));
  r.stats.steps = s.value("steps", int64_t(0));
  r.stats.samples = s.value("samples", int64_t(0));
  r.stats.wall_s = s.value("wall_s", 0.0);
  r.stats.samples_per_s = s.value("samples_per_s", 0.0);
  r.stats.strategy = detail::numbers_from_json(s.value("strategy", nlohmann::json::object()));
  r.checkpoint = j.value("checkpoint", "");
  r.best_checkpoint = j.value("best_checkpoint", "");
  r.signal = j.value("signal", 0);
  return r;
}

}  // namespace mpitrain
