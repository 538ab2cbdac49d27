#include "shm_channel.hpp"

#include <sched.h>

#include "mpitrain/errors.hpp"

namespace mpitrain::detail {

namespace {
uint64_t pack(const CallInfo& c) {
  return uint64_t(c.kind) | uint64_t(c.dtype) << 8 | uint64_t(c.op) << 16 | uint64_t(uint32_t(c.root + 1)) << 32;
}
std::string unpack(const uint64_t d[3]) {
  CallInfo c;
  c.kind = CollectiveKind(d[0] & 0xff);
  c.dtype = DType((d[0] >> 8) & 0xff);
  c.op = ReduceOp((d[0] >> 16) & 0xff);
  c.root = int(uint32_t(d[0] >> 32)) - 1;
  c.count = int64_t(d[1]);
  c.seq = d[2];
  return c.describe();
}
}  // namespace

ShmChannel::ShmChannel(MPI_Comm node_comm, size_t small_bytes, std::vector<int> world_ranks)
    : world_ranks_(std::move(world_ranks)), small_bytes_((small_bytes + 127) / 128 * 128) {
  MPI_Comm_rank(node_comm, &me_);
  MPI_Comm_size(node_comm, &n_);
  region_ = std::make_unique<ShmRegion>(node_comm, sizeof(RankLine) + 2 * small_bytes_);
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
