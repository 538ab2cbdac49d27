#include "preemption.hpp"

#include "mpitrain/launch/stop_request.hpp"

namespace mpitrain::detail {

namespace {
extern "C" void on_preemption_signal(int sig) { request_stop(sig); }
}  // namespace

PreemptionSignals::PreemptionSignals() {
  clear_stop_request();  // a signal of an earlier fit in this process is spent
  struct sigaction sa {};
  sa.sa_handler = on_preemption_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &sa, &old_term_);
  sigaction(SIGUSR1, &sa, &old_usr1_);
}

PreemptionSignals::~PreemptionSignals() {
  sigaction(SIGTERM, &old_term_, nullptr);
  sigaction(SIGUSR1, &old_usr1_, nullptr);
}

Preemption::Preemption(bool install_handlers) {
  if (install_handlers) signals_ = std::make_unique<PreemptionSignals>();
}

void Preemption::on_train_batch_end(FitLoopView& loop, int64_t b, bool stepped) {
  if (!stepped) return;
  int32_t sig = stop_requested();
  loop.engine().allreduce(&sig, 1, DType::Int32, ReduceOp::Max).wait();
  if (!sig) return;
  if (loop.last_saved_step() != loop.global_step()) loop.save_checkpoint(loop.epoch(), b + 1, std::nullopt);
  loop.request_preemption(sig);
}

}  // namespace mpitrain::detail
