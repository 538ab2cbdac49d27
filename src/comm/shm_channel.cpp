#include "shm_channel.hpp"

#include <sched.h>
#include <unistd.h>

#include "mpitrain/errors.hpp"

namespace mpitrain::detail {

namespace {
uint64_t pack(const CallInfo& c) { return pack_call(c); }
std::string unpack(const uint64_t d[3]) { return unpack_call(d[0], int64_t(d[1]), d[2]).describe(); }
}  // namespace

ShmChannel::ShmChannel(MPI_Comm node_comm, size_t small_bytes, std::vector<int> world_ranks)
    : world_ranks_(std::move(world_ranks)), small_bytes_((small_bytes + 127) / 128 * 128) {
  MPI_Comm_rank(node_comm, &me_);
  MPI_Comm_size(node_comm, &n_);
  region_ = std::make_unique<ShmRegion>(node_comm, sizeof(RankLine) + 2 * small_bytes_);
  line(me_).pid = int64_t(::getpid());
  heartbeat_ = std::make_unique<Heartbeat>(line(me_).beat);  // first beat stored before it returns
  MPI_Barrier(node_comm);  // peers' first beats and pids are visible from here on
}

ShmChannel::~ShmChannel() = default;  // the heartbeat stops first, writing kClosed

std::string ShmChannel::stalled_peer(std::chrono::nanoseconds limit) const {
  const int64_t now = monotonic_ns();
  for (int r = 0; r < n_; ++r) {
    if (r == me_) continue;
    const RankLine& l = line(r);
    const uint64_t beat = l.beat.load(std::memory_order_acquire);
    const std::string who = "rank " + std::to_string(world_ranks_[size_t(r)]) + " (pid " + std::to_string(l.pid) + ")";
    if (beat == Heartbeat::kClosed)
      return who + " has closed its communicator: it left the job's collectives (returned, or failed)";
    const int64_t age = now - int64_t(beat);
    if (age > limit.count())
      return who + " has shown no sign of life for " + std::to_string(age / 1000000000) + " s: " +
             process_state(l.pid) + " (liveness timeout " + std::to_string(limit.count() / 1000000000) + " s)";
  }
  return {};
}

bool ShmChannel::all_reached(uint64_t target) {
  for (; first_behind_ < n_; ++first_behind_)
    if (first_behind_ != me_ && line(first_behind_).counter.load(std::memory_order_acquire) < target) return false;
  first_behind_ = 0;
  return true;
}

std::string ShmChannel::behind(uint64_t target) const {
  std::string s;
  for (int r = 0; r < n_; ++r)
    if (r != me_ && line(r).counter.load(std::memory_order_acquire) < target)
      s += (s.empty() ? "" : ", ") + std::to_string(world_ranks_[size_t(r)]);
  return s;
}

uint64_t ShmChannel::begin(const CallInfo& info) {
  const uint64_t idx = ops_++;
  uint64_t* d = line(me_).desc[idx & 1];
  d[0] = pack(info);
  d[1] = uint64_t(info.count);
  d[2] = info.seq;
  return idx;  // published by the caller's next signal() (release)
}

std::string ShmChannel::peer_mismatch(uint64_t op_index, const CallInfo& info) const {
  const uint64_t* mine = line(me_).desc[op_index & 1];
  for (int r = 0; r < n_; ++r) {
    if (r == me_) continue;
    const uint64_t* theirs = line(r).desc[op_index & 1];
    if (theirs[0] != mine[0] || theirs[1] != mine[1] || theirs[2] != mine[2])
      return "ranks disagree on a collective: rank " + std::to_string(world_ranks_[size_t(me_)]) + " called " +
             info.describe() + " but rank " + std::to_string(world_ranks_[size_t(r)]) + " called " + unpack(theirs);
  }
  return {};
}

void Backoff::pause() {
  if (++n_ >= limit_) {
    n_ = 0;
    sched_yield();
    return;
  }
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace mpitrain::detail
