// A spawn-mode job's poll loop over the workers' sockets: connections, hellos, the task, and the
// messages every worker streams until its result (see spawn_job.hpp).
#include "spawn_job.hpp"

#include <poll.h>

#include "console.hpp"
#include "mpitrain/detail/json_number.hpp"
#include "mpitrain/errors.hpp"
#include "mpitrain/launch/runtime.hpp"
#include "protocol.hpp"

namespace mpitrain::detail {

namespace {
double since(SpawnJob::clock_type::time_point t0) {
  return std::chrono::duration<double>(SpawnJob::clock_type::now() - t0).count();
}
}  // namespace

SpawnJob::SpawnJob(const std::string& entry, const nlohmann::json& payload, const ScalingConfig& sc,
                   const LaunchOptions& o)
    : scaling_(sc), opts_(o) {
  task_ = task_message(entry, payload, sc, o, Runtime::current() && Runtime::current()->print_topology());
  if (!opts_.on_message) opts_.on_message = default_message_handler;
  const size_t n = size_t(sc.num_workers);
  channels_.resize(n);
  result_.wall_seconds.assign(n, 0.0);
  result_.worker_pids.assign(n, 0);
  got_result_.assign(n, false);
  last_seen_.assign(n, clock_type::now());
}

Result SpawnJob::run() {
  t0_ = clock_type::now();
  leader_ = start_leader(scaling_.num_workers, listener_.name());
  while (!done_) step();
  teardown();
  result_.total_seconds = since(t0_);
  return result_;
}

void SpawnJob::step() {
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
  check_startup();
  check_liveness();
  if (results_ == scaling_.num_workers && leader_exited_) done_ = true;
}

// New connections, and those that have not said hello yet.
void SpawnJob::accept_workers() {
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
void SpawnJob::greet(LineChannel c, const std::vector<nlohmann::json>& msgs) {
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
  last_seen_[size_t(r)] = clock_type::now();
  channels_[size_t(r)] = std::move(c);
  channels_[size_t(r)].send(task_);
  if (stop_sent_) channels_[size_t(r)].send(stop_message());
  for (size_t k = 1; k < msgs.size(); ++k) handle(r, msgs[k]);
  if (++ready_ == scaling_.num_workers) result_.ready_seconds = since(t0_);
  opts_.on_message(msgs[0]);
}

// Handles what every connected worker sent; a socket closed before the worker's result is a death.
void SpawnJob::read_workers() {
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

void SpawnJob::handle(int r, const nlohmann::json& m) {
  MessageType type;
  try {
    type = read_header(m).type;
  } catch (const Error& e) {
    return fail(r, e.what(), ErrorKind::Error);
  }
  last_seen_[size_t(r)] = clock_type::now();  // heartbeats and everything else show it is alive
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

}  // namespace mpitrain::detail
