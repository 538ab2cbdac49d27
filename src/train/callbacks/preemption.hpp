// SIGTERM / SIGUSR1 in SPMD runs (Slurm's --signal, a time limit, preemption): the handler only
// records the signal; the Preemption callback agrees on it across ranks at the next step
// boundary, checkpoints and stops the loop, so every rank stops at the same step with nothing lost.
#pragma once
#include <csignal>

#include "mpitrain/train/callback.hpp"

namespace mpitrain::detail {

class PreemptionSignals {
 public:
  PreemptionSignals();   ///< installs the handlers (restored by the destructor)
  ~PreemptionSignals();
  PreemptionSignals(const PreemptionSignals&) = delete;
  PreemptionSignals& operator=(const PreemptionSignals&) = delete;
  /// The signal received since install (0: none).
  static int received();

 private:
  struct sigaction old_term_ {}, old_usr1_ {};
};

/// Built by the fit loop first thing in SPMD runs, so the handlers are in place before any work.
class Preemption final : public Callback {
 public:
  std::string state_key() const override { return "preemption"; }
  /// Collective, after every optimizer step: any rank signalled -> checkpoint (unless this step
  /// was just saved) and stop as Preempted.
  void on_train_batch_end(FitLoopView& loop, int64_t batch_idx, bool stepped) override;

 private:
  PreemptionSignals signals_;
};

}  // namespace mpitrain::detail
