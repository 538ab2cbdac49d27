// The Engine's private state, shared by its files (engine.cpp: submission and the thread's loop;
// coordinator.cpp: the cycle).
#pragma once
#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <unordered_set>
#include <vector>

#include "coordinator.hpp"
#include "handle_state.hpp"

namespace mpitrain {

namespace detail {
struct EngineCounters {
  std::atomic<int64_t> cycles{0}, negotiations{0}, cache_hits{0}, cache_misses{0}, tensors{0}, collectives{0},
      fused_bytes{0};
};
}  // namespace detail

struct Engine::Impl {
  struct FifoItem {
    std::function<void(Communicator&)> op;
    std::shared_ptr<Handle::State> state;
  };

  std::mutex m;
  std::condition_variable cv;
  std::deque<FifoItem> fifo;            // FIFO operations not yet run
  std::vector<detail::Entry> incoming;  // named operations not yet seen by the engine thread
  std::unordered_set<std::string> in_flight;  // names submitted and not completed (unique per rank)
  bool stop = false;
  std::exception_ptr failed;            // once set, everything fails with it
  detail::EngineCounters counters;
  std::unique_ptr<detail::Coordinator> coordinator;  // Coordinated mode
  std::thread thread;

  void fifo_loop(Communicator& comm);
  void coordinated_loop(Communicator& comm, const EngineOptions& options);
  /// Runs the first `n` FIFO operations (every rank has them); false once one failed.
  bool run_fifo(Communicator& comm, int64_t n);
  void fail_everything(const std::exception_ptr& error);
};

}  // namespace mpitrain
