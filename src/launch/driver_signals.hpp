// SIGTERM / SIGINT to a driver while spawn-mode jobs run: the first asks every job's workers to
// checkpoint and stop at the next step (the job then ends as preempted, exit 75 from the apps); a
// second stops the jobs at once. Handlers are installed while at least one job runs.
#pragma once

namespace mpitrain::detail {

class DriverSignals {
 public:
  DriverSignals();   ///< installs the handlers if no other job holds them
  ~DriverSignals();  ///< restores the previous handlers when the last job ends
  DriverSignals(const DriverSignals&) = delete;
  DriverSignals& operator=(const DriverSignals&) = delete;
  /// Signals received since this object was made, and the last of them.
  int count() const;
  int last() const;

 private:
  int start_;
};

}  // namespace mpitrain::detail
