#include "task_queue.hpp"

#include "heartbeat.hpp"
#include "shm_channel.hpp"

namespace mpitrain::detail {

namespace {
std::string seconds(std::chrono::milliseconds ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f s", double(ms.count()) / 1000.0);
  return buf;
}
}  // namespace

std::string TaskQueue::where() const {
  return "rank " + std::to_string(ctx_.rank) + " (world size " + std::to_string(ctx_.size) + ")";
}

void TaskQueue::check_usable() const {
  if (!failed_.empty()) throw CommError("communicator unusable after an earlier failure: " + failed_);
}

void TaskQueue::poison(const std::string& msg) {
  failed_ = msg;
  for (auto& t : queue_) abandoned_.push_back(std::move(t));
  queue_.clear();
  throw CommError(msg);
}

CallInfo TaskQueue::next_call(CollectiveKind kind, int64_t count, DType dtype, ReduceOp op, int root) {
  return CallInfo{kind, seq_++, count, dtype, op, root};
}

void TaskQueue::push(std::shared_ptr<Task> t) {
  queue_.push_back(std::move(t));
  progress();
}

void TaskQueue::progress() {
  try {
    for (auto& t : queue_)
      if (!t->issue()) break;
    while (!queue_.empty() && queue_.front()->step()) queue_.pop_front();
  } catch (const CommError& e) {
    poison(std::string(e.what()) + " [on " + where() + "]");
  }
}

void TaskQueue::wait_unqueued(Task& t, std::chrono::milliseconds timeout) {
  drive(t, timeout, [&] {
    try {
      t.step();
    } catch (const CommError& e) {
      poison(std::string(e.what()) + " [on " + where() + "]");
    }
  });
}

// Polls `advance` until `t` completes, the deadline expires or a node peer stops beating; the
// clock is read every 32 polls only.
void TaskQueue::drive(Task& t, std::chrono::milliseconds timeout, const std::function<void()>& advance) {
  advance();
  if (t.done()) return;
  using clock = std::chrono::steady_clock;
  const auto start = clock::now(), deadline = start + timeout;
  auto next_liveness = start + std::chrono::milliseconds(Heartbeat::kPeriodMs);
  Backoff backoff(oversubscribed_);
  for (uint32_t spins = 1;; ++spins) {
    advance();
    if (t.done()) return;
    if ((spins & 31) == 0) {
      const auto now = clock::now();
      if (now > deadline) timed_out(t, timeout);
      if (now > next_liveness) {
        check_liveness(t, advance);
        if (t.done()) return;
        next_liveness = now + std::chrono::milliseconds(Heartbeat::kPeriodMs);
      }
    }
    backoff.pause();
  }
}

void TaskQueue::check_liveness(Task& t, const std::function<void()>& advance) {
  if (ctx_.opts.liveness_timeout.count() <= 0 || ctx_.local_size == 1) return;
  std::string stalled = ctx_.chan->stalled_peer(ctx_.opts.liveness_timeout);
  if (stalled.empty()) return;
  advance();  // a peer's last signals precede its last beat (or its close): count them first
  if (t.done()) return;
  Task& stuck = queue_.empty() ? t : *queue_.front();
  poison(stuck.info().describe() + " on " + where() + " cannot complete: " + stalled);
}

void TaskQueue::timed_out(Task& awaited, std::chrono::milliseconds timeout) {
  Task& stuck = queue_.empty() ? awaited : *queue_.front();
  std::string why = stuck.waiting_for();
  std::string msg = stuck.info().describe() + " on " + where() + " did not complete within the deadline of " +
                    seconds(timeout) + ": " +
                    (why.empty() ? "peers have not completed it (a rank skipped it, diverged or died)" : why);
  if (&stuck != &awaited) msg += "; the awaited " + awaited.info().describe() + " is queued behind it";
  poison(msg);
}

void TaskQueue::finish(std::chrono::milliseconds timeout, std::chrono::milliseconds grace) {
  if (failed_.empty() && !queue_.empty()) {
    try {
      std::shared_ptr<Task> last = queue_.back();  // owned here: the queue pops it when done
      wait(*last, timeout);
    } catch (const CommError&) {
    }
  }
  const auto until = std::chrono::steady_clock::now() + grace;
  while (!abandoned_.empty() && std::chrono::steady_clock::now() < until) {
    try {
      if (abandoned_.front()->drain()) abandoned_.pop_front();
    } catch (const CommError&) {
      abandoned_.pop_front();
    }
  }
}

}  // namespace mpitrain::detail
