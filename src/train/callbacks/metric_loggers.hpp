// The loggers as a callback (rank 0 writes): step values every log_every_n_steps optimizer steps,
// epoch values (train_* as train_*_epoch, plus "epoch") after every epoch, to each Logger named
// in TrainerOptions::loggers ("csv": metrics.csv, "tensorboard": tensorboard/events.*).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "mpitrain/train/callback.hpp"
#include "mpitrain/train/loggers.hpp"

namespace mpitrain::detail {

class MetricLoggers final : public Callback {
 public:
  explicit MetricLoggers(std::vector<std::string> names) : names_(std::move(names)) {}
  std::string state_key() const override { return "loggers"; }
  void on_fit_start(FitLoopView& loop) override;  ///< opens the loggers (a resumed run appends)
  void on_train_batch_end(FitLoopView& loop, int64_t batch_idx, bool stepped) override;
  void on_train_epoch_end(FitLoopView& loop) override;

 private:
  std::vector<std::string> names_;
  std::vector<std::unique_ptr<Logger>> loggers_;
};

}  // namespace mpitrain::detail
