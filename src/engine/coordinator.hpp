// The controller of Coordinated mode (Horovod's controller + response cache): each cycle, one
// small allreduce decides on every rank what is ready everywhere — cached names by one value per
// cache slot, FIFO operations by their count — and, only when a rank has a name not yet agreed,
// a round trip to rank 0 (requests gathered, rank 0's MessageTable answers, answers broadcast).
// Then the agreed tensors move (CollectiveOps) and their handles complete.
//
// The agreement vector, one int32 per entry, reduced with Min:
//   [0] FIFO operations enqueued here (Min: how many every rank has)
//   [1] 0 if this rank needs a round trip to rank 0, else 1 (Min: any rank does)
//   [2] 0 if this rank wants to stop, else 1 (Min: any rank does)
//   [3 + s] cache slot s: 0 invalidate (this rank saw another signature for its name, or waited
//           too long), 1 not ready, 2 ready here (Min: ready everywhere / invalid anywhere)
#pragma once
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "collective_ops.hpp"
#include "message_table.hpp"
#include "mpitrain/engine/engine.hpp"
#include "response_cache.hpp"

namespace mpitrain::detail {

/// A named operation submitted on this rank, until it completes.
struct Entry {
  Request req;
  at::Tensor tensor;
  std::shared_ptr<Engine::Handle::State> state;
  Clock::time_point submitted;
  int slot = ResponseCache::kMissing;  // its cache slot, when its name and signature are cached
  bool sent = false;                   // its request has gone to rank 0
};

struct EngineCounters;  // engine_impl.hpp

class Coordinator {
 public:
  /// `released(names)` runs as those names' operations complete, before their handles do.
  Coordinator(Communicator& comm, const EngineOptions& options, EngineCounters& counters,
              std::function<void(const std::vector<std::string>&)> released);
  ~Coordinator();

  /// A new operation of this rank (engine thread). Fails its handle at once when the name is
  /// already in flight here.
  void add(Entry e);
  /// No work of this rank is waiting (engine thread; read by the loop between cycles).
  bool idle() const { return pending_.empty() && !join_; }
  std::vector<std::string> pending_names() const;

  struct Outcome {
    int64_t fifo_ready = 0;  ///< FIFO operations every rank has: run them now, in order
    bool stopped = false;    ///< the ranks stopped together; pending work has failed
    bool progress = false;   ///< something was agreed: more may be ready at once, so cycle again now
  };
  /// One cycle (collective). Throws CommError when a collective fails (the caller fails all).
  Outcome cycle(int64_t fifo_here, bool stop_here);
  /// Fails every pending operation with `error`.
  void fail_all(const std::exception_ptr& error);

 private:
  std::vector<int32_t> agreement_vector(int64_t fifo_here, bool stop_here, Clock::time_point now);
  ResponseList negotiate(Clock::time_point now);
  void apply_join(const ResponseList& rl);
  /// Moves the agreed tensors (the first `cached` came from the cache) and completes their handles.
  void run(std::vector<Response> responses, size_t cached, Clock::time_point agreed);
  void forget_slot(int slot);
  /// Completes `e` (its handle may be shared by a group) with `error` or success.
  void finish(Entry& e, std::exception_ptr error = nullptr);
  /// Completes many: names released first, then every handle marked, then waiters woken.
  void finish_all(std::vector<std::pair<Entry*, std::exception_ptr>>& done);
  void log_stalls(Clock::time_point now);

  Communicator& comm_;
  const EngineOptions& options_;
  EngineCounters& counters_;
  std::function<void(const std::vector<std::string>&)> released_;
  std::unique_ptr<Timeline> timeline_;
  ResponseCache cache_;
  CollectiveOps ops_;
  std::unique_ptr<MessageTable> table_;     // rank 0 only
  std::unordered_map<std::string, Entry> pending_;
  std::vector<std::string> order_;          // pending names in submission order (deterministic sends)
  std::vector<int> invalid_;                // cache slots this rank invalidates next cycle
  std::shared_ptr<Engine::Handle::State> join_;  // this rank's join, until every rank has joined
  bool join_sent_ = false;
  std::vector<bool> joined_;                // agreed: ranks that have joined
  Clock::time_point last_stall_report_{};
  std::string shutdown_report_;             // rank 0: a stall past stall_shutdown
  bool responses_run_empty_ = true;         // the last cycle agreed nothing
};

}  // namespace mpitrain::detail
