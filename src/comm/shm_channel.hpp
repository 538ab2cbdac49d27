// Flag synchronisation between the ranks of a node over a ShmRegion of control slots.
// Each rank owns one 128-byte line: a monotone counter (bumped with release semantics at every
// phase of every shared-memory collective) and the descriptor of its current collective, plus a
// double-buffered payload area for small messages. Because all ranks run the same sequence of
// phases, "every peer's counter >= mine" means "every peer finished this phase".
// The line also holds the rank's heartbeat (heartbeat.hpp) and pid, so a waiting rank can tell a
// stopped peer from a slow one.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "heartbeat.hpp"
#include "shm_region.hpp"
#include "task.hpp"

namespace mpitrain::detail {

struct alignas(128) RankLine {
  std::atomic<uint64_t> counter;
  uint64_t desc[2][3];  // [parity of shm op index] = {kind|dtype|op|root, count, seq}
  std::atomic<uint64_t> beat;  // monotonic_ns() of the last heartbeat; Heartbeat::kClosed after
  int64_t pid;
};
static_assert(std::atomic<uint64_t>::is_always_lock_free, "cross-process flags need lock-free atomics");

class ShmChannel {
 public:
  /// Collective over `node_comm`; `world_ranks[r]` is local rank r's rank in the world (for errors).
  /// Starts this rank's heartbeat; returns once every peer's first beat is visible.
  ShmChannel(MPI_Comm node_comm, size_t small_bytes, std::vector<int> world_ranks);
  ~ShmChannel();

  int local_rank() const { return me_; }
  int local_size() const { return n_; }
  size_t small_bytes() const { return small_bytes_; }
  ShmRegion& region() { return *region_; }

  uint64_t counter() const { return mine_; }
  /// Bumps this rank's counter (release): the phase's writes become visible to peers.
  void signal() { line(me_).counter.store(++mine_, std::memory_order_release); }
  /// True when every peer's counter reached `target` (acquire). Non-blocking.
  bool all_reached(uint64_t target);
  /// World ranks whose counter is below `target`, as "1, 3" (for timeout messages).
  std::string behind(uint64_t target) const;

  /// Starts a shared-memory collective: returns its index (for descriptor/payload parity) and
  /// publishes its descriptor. Must be called before the collective's first signal().
  uint64_t begin(const CallInfo& info);
  /// After the first phase: a message naming the first peer whose descriptor differs from ours,
  /// or "" when all agree.
  std::string peer_mismatch(uint64_t op_index, const CallInfo& info) const;

  /// A message naming the first peer whose heartbeat is older than `limit`, or "" when every
  /// peer is alive (a slow peer keeps beating). Reads /proc to say why (stopped, exited, ...).
  std::string stalled_peer(std::chrono::nanoseconds limit) const;

  char* payload(int local_rank, uint64_t op_index) const {
    return region_->slot(local_rank) + sizeof(RankLine) + (op_index & 1) * small_bytes_;
  }

 private:
  RankLine& line(int r) const { return *reinterpret_cast<RankLine*>(region_->slot(r)); }
  std::unique_ptr<ShmRegion> region_;
  std::vector<int> world_ranks_;
  size_t small_bytes_;
  int me_ = 0, n_ = 1;
  int first_behind_ = 0;  // resume scanning here: peers ahead stay ahead
  uint64_t mine_ = 0;
  uint64_t ops_ = 0;
  std::unique_ptr<Heartbeat> heartbeat_;
};

/// Spin politely: pause while cores are free, yield when ranks outnumber cores.
class Backoff {
 public:
  explicit Backoff(bool oversubscribed) : limit_(oversubscribed ? 1 : 2048) {}
  void pause();

 private:
  int limit_;
  int n_ = 0;
};

}  // namespace mpitrain::detail
