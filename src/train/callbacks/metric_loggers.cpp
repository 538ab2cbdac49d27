#include "metric_loggers.hpp"

#include "mpitrain/train/trainer.hpp"

namespace mpitrain::detail {

void MetricLoggers::on_fit_start(FitLoopView& loop) {
  if (loop.rank() != 0) return;
  const std::string& dir = loop.options().default_root_dir;
  for (const auto& name : names_) {
    if (name == "csv") loggers_.push_back(std::make_unique<CsvLogger>(dir, loop.resumed() ? CsvLogger::Append : CsvLogger::Replace));
    if (name == "tensorboard") loggers_.push_back(std::make_unique<TensorBoardLogger>(dir + "/tensorboard"));
  }
}

void MetricLoggers::on_train_batch_end(FitLoopView& loop, int64_t, bool stepped) {
  if (!stepped || loop.global_step() % loop.options().log_every_n_steps != 0) return;
  for (auto& l : loggers_) l->log_metrics(loop.step_metrics(), loop.global_step());
}

void MetricLoggers::on_train_epoch_end(FitLoopView& loop) {
  if (loggers_.empty()) return;
  std::map<std::string, double> m;
  for (auto& [k, v] : loop.epoch_metrics()) m[k + (k.rfind("train_", 0) == 0 ? "_epoch" : "")] = v;
  m["epoch"] = double(loop.epoch());
  for (auto& l : loggers_) l->log_metrics(m, loop.global_step());
}

}  // namespace mpitrain::detail
