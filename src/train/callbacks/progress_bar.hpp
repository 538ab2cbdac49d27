// The progress bar: rank 0's line every log_every_n_steps optimizer steps (and at the end of each
// epoch's batches) while enable_progress_bar, and an "epoch N done: metric=value ..." log line
// after every epoch. The driver redraws lines on a terminal, one per report in a log.
#pragma once
#include <chrono>

#include "mpitrain/train/callback.hpp"

namespace mpitrain::detail {

class ProgressBar final : public Callback {
 public:
  explicit ProgressBar(bool show_bar) : show_bar_(show_bar) {}
  std::string state_key() const override { return "progress_bar"; }
  void on_train_epoch_start(FitLoopView& loop) override;
  void on_train_batch_end(FitLoopView& loop, int64_t batch_idx, bool stepped) override;
  void on_train_epoch_end(FitLoopView& loop) override;

 private:
  bool show_bar_;
  std::chrono::steady_clock::time_point window_start_;
  int64_t window_steps_ = 0;
};

}  // namespace mpitrain::detail
