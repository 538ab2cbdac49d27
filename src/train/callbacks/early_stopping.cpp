#include "mpitrain/train/callbacks/early_stopping.hpp"

#include <cmath>

#include "mpitrain/detail/json_number.hpp"
#include "mpitrain/errors.hpp"

namespace mpitrain {

void EarlyStoppingOptions::validate() const {
  if (mode != "min" && mode != "max") throw ConfigError("early_stopping.mode must be min or max");
  if (patience < 1) throw ConfigError("early_stopping.patience must be >= 1");
}

EarlyStopping::EarlyStopping(EarlyStoppingOptions options)
    : o_(std::move(options)), best_(o_.mode == "min" ? INFINITY : -INFINITY) {
  o_.validate();
}

void EarlyStopping::on_fit_start(FitLoopView& loop) {
  if (stopped_) loop.request_stop("");  // said so when it stopped
}

void EarlyStopping::on_train_epoch_end(FitLoopView& loop) {
  const auto& metrics = loop.epoch_metrics();
  auto f = metrics.find(o_.monitor);
  if (f == metrics.end()) throw ConfigError("EarlyStopping: metric '" + o_.monitor + "' was not logged this epoch");
  const bool better = o_.mode == "min" ? f->second < best_ - o_.min_delta : f->second > best_ + o_.min_delta;
  if (better) {
    best_ = f->second;
    bad_epochs_ = 0;
  } else if (++bad_epochs_ >= o_.patience) {
    stopped_ = true;
    loop.request_stop("early stopping: " + o_.monitor + " did not improve for " + std::to_string(bad_epochs_) + " epochs");
  }
}

void EarlyStopping::on_fit_end(FitLoopView& loop) { loop.report_result_metric("early_stopping_best", best_); }

nlohmann::json EarlyStopping::state_dict() const {
  return {{"best", detail::json_number(best_)}, {"bad_epochs", bad_epochs_}, {"stopped", stopped_}};
}

void EarlyStopping::load_state_dict(const nlohmann::json& j) {
  if (j.contains("best")) best_ = detail::number_from_json(j["best"]);
  bad_epochs_ = j.value("bad_epochs", int64_t(0));
  stopped_ = j.value("stopped", false);
}

}  // namespace mpitrain
