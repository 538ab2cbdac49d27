// SIGTERM / SIGUSR1 in SPMD runs (Slurm's --signal, a time limit, preemption): the handler only
// records the signal; the training loop agrees on it across ranks at the next step boundary,
// checkpoints and returns, so every rank stops at the same step with nothing lost.
#pragma once
#include <csignal>

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

}  // namespace mpitrain::detail
