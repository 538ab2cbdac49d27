// A request to checkpoint and stop at the next step boundary, for this process's training: set by
// SIGTERM/SIGUSR1 in SPMD runs (the train layer's preemption handlers) and, in spawn mode, by the
// driver's stop message (the driver itself got SIGTERM/SIGINT). Training polls it once per step.
#pragma once

namespace mpitrain {

/// Records `signal` as the reason to stop (async-signal-safe: a lock-free atomic store).
void request_stop(int signal);
/// The signal of the pending request; 0 when none.
int stop_requested();
void clear_stop_request();

}  // namespace mpitrain
