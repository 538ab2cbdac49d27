// Checkpoint-and-stop: SIGTERM / SIGUSR1 in SPMD runs (Slurm's --signal, a time limit,
// preemption), or in spawn mode the driver's stop message (it got SIGTERM/SIGINT). Either only
// records a stop request (launch/stop_request.hpp); the Preemption callback agrees on it across
// ranks at the next step boundary, checkpoints and stops the loop, so every rank stops at the
// same step with nothing lost.
#pragma once
#include <csignal>
#include <memory>

#include "mpitrain/train/callback.hpp"

namespace mpitrain::detail {

class PreemptionSignals {
 public:
  PreemptionSignals();   ///< installs the handlers (restored by the destructor)
  ~PreemptionSignals();
  PreemptionSignals(const PreemptionSignals&) = delete;
  PreemptionSignals& operator=(const PreemptionSignals&) = delete;

 private:
  struct sigaction old_term_ {}, old_usr1_ {};
};

/// Built by the fit loop first thing, so SPMD's handlers are in place before any work.
class Preemption final : public Callback {
 public:
  /// install_handlers: SPMD (a spawned worker's stop comes from its driver, not from signals).
  explicit Preemption(bool install_handlers);
  std::string state_key() const override { return "preemption"; }
  /// Collective, after every optimizer step: any rank signalled -> checkpoint (unless this step
  /// was just saved) and stop as Preempted.
  void on_train_batch_end(FitLoopView& loop, int64_t batch_idx, bool stepped) override;

 private:
  std::unique_ptr<PreemptionSignals> signals_;
};

}  // namespace mpitrain::detail
