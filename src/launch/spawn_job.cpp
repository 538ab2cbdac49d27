// A spawn-mode job: leader start, the driver's poll loop over the workers' sockets, naming the
// rank and cause of a worker's death, and teardown of every process of the job.
#include "spawn_job.hpp"

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <iostream>

#include "channel.hpp"
#include "console.hpp"
#include "driver_signals.hpp"
#include "leader_process.hpp"
#include "mpitrain/errors.hpp"
#include "mpitrain/launch/runtime.hpp"
#include "process_table.hpp"
#include "mpitrain/detail/json_number.hpp"
#include "protocol.hpp"

namespace mpitrain::detail {

namespace {

using clock_type = std::chrono::steady_clock;
double since(clock_type::time_point t0) { return std::chrono::duration<double>(clock_type::now() - t0).count(); }

class Job {
 public:
  Job(const std::string& entry, const nlohmann::json& payload, const ScalingConfig& sc, const LaunchOptions& o)
      : scaling_(sc), opts_(o) {
    task_ = task_message(entry, payload, sc, o, Runtime::current() && Runtime::current()->print_topology());
    if (!opts_.on_message) opts_.on_message = default_message_handler;
    const size_t n = size_t(sc.num_workers);
    channels_.resize(n);
    result_.wall_seconds.assign(n, 0.0);
    result_.worker_pids.assign(n, 0);
    got_result_.assign(n, false);
  }
  ~Job() { teardown(); }

  Result run() {
    t0_ = clock_type::now();
    leader_ = start_leader(scaling_.num_workers, listener_.name());
    while (!done_) step();
    teardown();
    result_.total_seconds = since(t0_);
    return result_;
  }
  int signal_to_reraise() const { return reraise_; }

 private:
  void fail(int rank, const std::string& msg, ErrorKind kind = ErrorKind::Died) {
    if (!result_.error.empty()) return;  // the first failure is the cause; the rest are fallout
    result_.failed_rank = rank;
    result_.error_kind = kind;
    result_.error = rank >= 0 ? "rank " + std::to_string(rank) + ": " + msg : msg;
    done_ = true;
  }

  void step() {
    std::vector<pollfd> fds = {{listener_.fd(), POLLIN, 0}, {leader_.stderr_fd, POLLIN, 0}};
    for (auto& c : pending_) fds.push_back({c.fd(), POLLIN, 0});
    for (auto& c : channels_)
      if (c.open()) fds.push_back({c.fd(), POLLIN, 0});
    ::poll(fds.data(), fds.size(), 100);
    read_leader_stderr(leader_.stderr_fd, leader_stderr_);
    check_signals();
    if (done_) return;
    accept_workers();
    if (done_) return;
    read_workers();
    if (done_) return;
    check_leader();
    if (ready_ < scaling_.num_workers && clock_type::now() - t0_ > opts_.startup_timeout)
      fail(-1, "only " + std::to_string(ready_) + " of " + std::to_string(scaling_.num_workers) +
                   " workers started within " + std::to_string(opts_.startup_timeout.count()) + " s" + launcher_tail(leader_stderr_));
    if (results_ == scaling_.num_workers && leader_exited_) done_ = true;
  }

  // SIGTERM/SIGINT to the driver: the first becomes a stop message to every worker (and to those
  // still connecting); a second ends the job at once and is re-raised once it is torn down.
  void check_signals() {
    const int n = signals_.count();
    if (n == 0) return;
    const std::string what = signal_text(signals_.last());
    if (n >= 2) {
      reraise_ = signals_.last();
      return fail(-1, "stopped at once by a second " + what, ErrorKind::Died);
    }
    if (stop_sent_) return;
    stop_sent_ = true;
    std::cerr << "mpitrain: " << what << ": the workers checkpoint and stop at the next step (send it again to stop at once)"
              << std::endl;
    for (auto& c : channels_)
      if (c.open()) c.send(stop_message());
  }
  nlohmann::json stop_message() const { return make_message(MessageType::Stop, -1, {{"signal", signals_.last()}}); }

  // New connections, and those that have not said hello yet.
  void accept_workers() {
    while (true) {
      LineChannel c = listener_.accept();
      if (!c.open()) break;
      pending_.push_back(std::move(c));
    }
    for (size_t i = 0; i < pending_.size() && !done_;) {
      bool eof = false;
      auto msgs = pending_[i].receive(&eof);
      if (!msgs.empty()) {
        greet(std::move(pending_[i]), msgs);
        pending_.erase(pending_.begin() + long(i));
      } else if (eof) {
        pending_.erase(pending_.begin() + long(i));
      } else {
        ++i;
      }
    }
  }

  // A connection's first message must be a hello of this protocol version from a rank not yet
  // connected; that rank's channel then gets the task.
  void greet(LineChannel c, const std::vector<nlohmann::json>& msgs) {
    int r = -1;
    try {
      const MessageHeader h = read_header(msgs[0]);
      r = h.rank;
      if (h.type != MessageType::Hello)
        throw Error("protocol error: a worker's first message is " + msgs[0].value("type", "") + ", not hello");
      if (r < 0 || r >= scaling_.num_workers || channels_[size_t(r)].open())
        throw Error("protocol error: unexpected hello from rank " + std::to_string(r));
      check_protocol_version(msgs[0], "worker rank " + std::to_string(r));
    } catch (const Error& e) {
      return fail(-1, e.what(), error_kind_of(e));
    }
    result_.worker_pids[size_t(r)] = msgs[0].value("pid", 0);
    channels_[size_t(r)] = std::move(c);
    channels_[size_t(r)].send(task_);
    if (stop_sent_) channels_[size_t(r)].send(stop_message());
    for (size_t k = 1; k < msgs.size(); ++k) handle(r, msgs[k]);
    if (++ready_ == scaling_.num_workers) result_.ready_seconds = since(t0_);
    opts_.on_message(msgs[0]);
  }

  // Handles what every connected worker sent; a socket closed before the worker's result is a death.
  void read_workers() {
    for (int r = 0; r < scaling_.num_workers && !done_; ++r) {
      auto& c = channels_[size_t(r)];
      if (!c.open()) continue;
      bool eof = false;
      for (auto& m : c.receive(&eof)) handle(r, m);
      if (eof) {
        c.close();
        if (!got_result_[size_t(r)] && !done_) worker_vanished(r);
      }
    }
  }

  void handle(int r, const nlohmann::json& m) {
    MessageType type;
    try {
      type = read_header(m).type;
    } catch (const Error& e) {
      return fail(r, e.what(), ErrorKind::Error);
    }
    if (type == MessageType::Metric) result_.metrics[m.value("name", "")] = detail::number_or_nan(m.value("value", nlohmann::json()));
    if (type == MessageType::Result) {
      got_result_[size_t(r)] = true;
      ++results_;
      result_.wall_seconds[size_t(r)] = m.value("wall", 0.0);
      if (r == 0) result_.value = m.value("value", nlohmann::json());
    }
    if (type == MessageType::Error) {
      const ErrorKind kind = parse_error_kind(m.value("kind", ""));
      fail(m.value("origin", r), m.value("message", "unknown error"), kind == ErrorKind::None ? ErrorKind::Exception : kind);
    }
    if (type != MessageType::Heartbeat) opts_.on_message(m);
  }

  // A worker's socket closed before its result: it died. Give the launcher a moment to say how
  // (Open MPI reports the signal or exit code on the leader's stderr), then name rank and cause.
  void worker_vanished(int r) {
    const auto until = clock_type::now() + opts_.failure_report_wait;
    const std::string who = "worker process (pid " + std::to_string(result_.worker_pids[size_t(r)]) + ")";
    for (;;) {
      read_leader_stderr(leader_.stderr_fd, leader_stderr_);
      const std::string how = worker_exit_report(leader_stderr_);
      if (!how.empty()) return fail(r, who + " " + how);
      if (clock_type::now() >= until) break;
      ::usleep(20000);
    }
    fail(r, who + " ended before finishing its task (no exit status reported)" + launcher_tail(leader_stderr_));
  }

  void check_leader() {
    if (leader_exited_ || leader_.pid <= 0) return;
    if (orted_ <= 0) orted_ = child_of(leader_.pid);  // remember Open MPI's daemon: it owns the workers
    int status = 0;
    if (::waitpid(leader_.pid, &status, WNOHANG) != leader_.pid) return;
    leader_exited_ = true;
    leader_.pid = -1;
    const bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!clean && results_ < scaling_.num_workers) {
      // Let the workers' own reports (error messages, vanished sockets) arrive first: they name the rank.
      const auto until = clock_type::now() + opts_.failure_report_wait;
      while (!done_ && clock_type::now() < until) {
        read_workers();
        ::usleep(20000);
      }
      std::string how = WIFSIGNALED(status) ? "was killed by " + signal_text(WTERMSIG(status))
                                            : "exited with code " + std::to_string(WEXITSTATUS(status));
      fail(-1, "the job's leader " + how + " before the workers finished" + launcher_tail(leader_stderr_));
    }
  }

  // Every process of the job ends here, whatever happened: workers, Open MPI's daemon, leader.
  void teardown() {
    if (torn_down_) return;
    torn_down_ = true;
    for (auto& c : channels_) c.close();
    pending_.clear();
    end_job_processes(leader_, orted_, result_.worker_pids, !result_.error.empty() || !leader_exited_);
    read_leader_stderr(leader_.stderr_fd, leader_stderr_);
    if (leader_.stderr_fd >= 0) ::close(leader_.stderr_fd);
    leader_.stderr_fd = -1;
    if (std::getenv("MPITRAIN_DEBUG_LAUNCH") && !leader_stderr_.empty())
      std::cerr << "mpitrain: leader stderr:\n" << leader_stderr_ << std::endl;
  }

  ScalingConfig scaling_;
  LaunchOptions opts_;
  DriverSignals signals_;
  bool stop_sent_ = false;
  nlohmann::json task_;
  Listener listener_;
  std::vector<LineChannel> pending_, channels_;
  std::vector<bool> got_result_;
  Result result_;
  clock_type::time_point t0_;
  LeaderProcess leader_;
  pid_t orted_ = -1;
  std::string leader_stderr_;
  int ready_ = 0, results_ = 0;
  bool done_ = false, leader_exited_ = false, torn_down_ = false;
  int reraise_ = 0;  // a second SIGTERM/SIGINT: re-raised by run_spawn_job once the job is gone
};

}  // namespace

Result run_spawn_job(const std::string& entry, const nlohmann::json& payload, const ScalingConfig& scaling,
                     const LaunchOptions& options) {
  Result r;
  int reraise = 0;
  {
    Job job(entry, payload, scaling, options);
    r = job.run();
    reraise = job.signal_to_reraise();
  }  // handlers restored
  if (reraise) ::raise(reraise);  // the default action (or the caller's handler) of a second signal
  return r;
}

}  // namespace mpitrain::detail
