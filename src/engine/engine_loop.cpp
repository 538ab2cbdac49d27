// The engine thread's loops: FIFO mode runs operations as they come; Coordinated mode runs cycles
// (coordinator.cpp) and, between them, the FIFO operations every rank has enqueued.
#include <sys/prctl.h>

#include "engine_impl.hpp"

namespace mpitrain {

using detail::Clock;

void Engine::Impl::fail_everything(const std::exception_ptr& error) {
  std::deque<FifoItem> items;
  std::vector<detail::Entry> named;
  {
    std::lock_guard<std::mutex> lock(m);
    if (!failed) failed = error;
    items.swap(fifo);
    named.swap(incoming);
  }
  for (auto& item : items) item.state->finish_one(error);
  for (auto& e : named) {
    {
      std::lock_guard<std::mutex> lock(m);
      in_flight.erase(e.req.name);
    }
    e.state->finish_one(error);
  }
  if (coordinator) coordinator->fail_all(error);
}

void Engine::Impl::fifo_loop(Communicator& comm) {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(m);
      cv.wait(lock, [this] { return stop || !fifo.empty(); });
      if (fifo.empty()) return;  // stop requested and drained
    }
    run_fifo(comm, 1);
  }
}

bool Engine::Impl::run_fifo(Communicator& comm, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    FifoItem item;
    std::exception_ptr error;
    {
      std::lock_guard<std::mutex> lock(m);
      item = std::move(fifo.front());
      fifo.pop_front();
      error = failed;
    }
    if (!error) {
      try {
        item.op(comm);
      } catch (...) {
        error = std::current_exception();
        std::lock_guard<std::mutex> lock(m);
        failed = error;  // once an op failed, later ops fail with it too
      }
    }
    item.state->finish_one(error);
    if (error) return false;
  }
  return true;
}

namespace {
// Submissions come in bursts (a loop over tensors, a layer's gradients): wait while the burst goes
// on, up to a bound, so that one cycle agrees on all of it instead of a cycle per fragment.
constexpr auto kCoalesceStep = std::chrono::microseconds(4);
constexpr auto kCoalesceMax = std::chrono::microseconds(40);

void coalesce(std::unique_lock<std::mutex>& lock, const std::vector<detail::Entry>& incoming) {
  if (incoming.empty()) return;
  const auto until = Clock::now() + kCoalesceMax;
  for (;;) {
    const size_t before = incoming.size();
    lock.unlock();  // sleep, not wait: submitters then never pay for waking this thread
    std::this_thread::sleep_for(kCoalesceStep);
    lock.lock();
    if (incoming.size() == before || Clock::now() >= until) return;
  }
}
}  // namespace

void Engine::Impl::coordinated_loop(Communicator& comm, const EngineOptions& options) {
  // Microsecond waits must mean microseconds, not the default 50 us timer slack.
  ::prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  // How long a destructor waits for this rank's work before stopping the ranks anyway.
  constexpr auto kStopGrace = std::chrono::seconds(10);
  Clock::time_point stop_seen{};
  size_t seen_fifo = 0;
  bool progress = false;  // the last cycle agreed something: cycle again without waiting
  // While this rank has work that peers have not submitted yet, it waits 10 us, 20 us, ... up to
  // cycle_time between cycles: a peer a few microseconds behind costs microseconds, one that is
  // busy for long costs no more than one agreement per cycle_time.
  constexpr std::chrono::microseconds kFirstBackoff{10};
  std::chrono::microseconds backoff = kFirstBackoff;
  for (;;) {
    std::vector<detail::Entry> fresh;
    size_t fifo_here;
    bool stopping;
    {
      std::unique_lock<std::mutex> lock(m);
      // A cycle starts at once when there is new work or the last cycle agreed something (more may
      // be ready: small-tensor latency); else after at most cycle_time, so that peers waiting on
      // this rank (it may have joined, or not submitted yet) are not held up longer.
      auto news = [&] { return stop || !incoming.empty() || fifo.size() != seen_fifo; };
      if (progress || news()) {
        backoff = kFirstBackoff;
        coalesce(lock, incoming);
      } else if (coordinator->idle()) {
        cv.wait_for(lock, options.cycle_time, news);
      } else {
        cv.wait_for(lock, std::min(backoff, options.cycle_time), news);
        backoff *= 2;
        if (news()) coalesce(lock, incoming);
      }
      fresh.swap(incoming);
      fifo_here = fifo.size();
      seen_fifo = fifo_here;
      stopping = stop;
    }
    for (auto& e : fresh) coordinator->add(std::move(e));
    if (stopping && stop_seen == Clock::time_point{}) stop_seen = Clock::now();
    const bool stop_now = stopping && fifo_here == 0 && (coordinator->idle() || Clock::now() - stop_seen > kStopGrace);
    detail::Coordinator::Outcome out;
    try {
      out = coordinator->cycle(int64_t(fifo_here), stop_now);
    } catch (...) {
      fail_everything(std::current_exception());
      return;
    }
    if (out.stopped) {
      fail_everything(std::make_exception_ptr(CommError("engine: stopped (an Engine was destroyed on some rank)")));
      return;
    }
    progress = out.progress || out.fifo_ready > 0;
    if (out.fifo_ready > 0) {
      if (!run_fifo(comm, out.fifo_ready)) {
        std::exception_ptr error;
        {
          std::lock_guard<std::mutex> lock(m);
          error = failed;
        }
        fail_everything(error);
        return;
      }
      std::lock_guard<std::mutex> lock(m);
      seen_fifo = fifo.size();
    }
  }
}

}  // namespace mpitrain
