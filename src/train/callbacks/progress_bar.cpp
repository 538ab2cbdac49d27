#include "progress_bar.hpp"

#include <iomanip>
#include <sstream>

#include "mpitrain/train/trainer.hpp"

namespace mpitrain::detail {

namespace {
std::string format_line(int64_t epoch, int64_t epochs, int64_t batch, int64_t batches, int64_t step, double it_s,
                        const std::map<std::string, double>& shown) {
  std::ostringstream s;
  s << "epoch " << epoch + 1 << "/" << epochs << " batch " << batch << "/" << batches << " step " << step;
  for (auto& [k, v] : shown) s << " " << k << " " << std::setprecision(4) << v;
  s << " " << std::fixed << std::setprecision(1) << it_s << " it/s";
  if (it_s > 0) s << " eta " << int64_t(double(batches - batch) / it_s) << "s";
  return s.str();
}
}  // namespace

void ProgressBar::on_train_epoch_start(FitLoopView&) {
  window_start_ = std::chrono::steady_clock::now();
  window_steps_ = 0;
}

void ProgressBar::on_train_batch_end(FitLoopView& loop, int64_t b, bool stepped) {
  if (!stepped) return;
  ++window_steps_;
  const TrainerOptions& o = loop.options();
  const int64_t steps = loop.global_step(), nb = loop.batches_in_epoch();
  if (loop.rank() != 0 || !show_bar_ || (steps % o.log_every_n_steps != 0 && b != nb - 1)) return;
  const auto now = std::chrono::steady_clock::now();
  const double dt = std::chrono::duration<double>(now - window_start_).count();
  const double it_s = dt > 0 ? double(window_steps_ * o.accumulate_grad_batches) / dt : 0;
  loop.task().report_progress({{"line", format_line(loop.epoch(), o.max_epochs, b + 1, nb, steps, it_s, loop.step_metrics())},
                               {"epoch", loop.epoch()},
                               {"step", steps}});
  window_start_ = now;
  window_steps_ = 0;
}

void ProgressBar::on_train_epoch_end(FitLoopView& loop) {
  if (loop.rank() != 0) return;
  std::ostringstream s;
  s << "epoch " << loop.epoch() + 1 << " done:";
  for (auto& [k, v] : loop.epoch_metrics()) s << " " << k << "=" << std::setprecision(4) << v;
  loop.task().log(s.str());
}

}  // namespace mpitrain::detail
