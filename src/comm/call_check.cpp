#include "call_check.hpp"

#include "mpitrain/errors.hpp"

namespace mpitrain::detail {

namespace {
bool test(MPI_Request& req) {
  int flag = 0;
  const int rc = MPI_Test(&req, &flag, MPI_STATUS_IGNORE);
  if (rc != MPI_SUCCESS) throw CommError("MPI_Test (collective agreement check) failed");
  return flag != 0;
}

std::string describe_words(const int64_t* w) {
  CallInfo c = unpack_call(uint64_t(w[0]), w[1], uint64_t(w[2]));
  return c.describe();
}
}  // namespace

uint64_t counts_hash(const std::vector<int64_t>& counts) {
  uint64_t h = 1469598103934665603ull;
  for (int64_t c : counts)
    for (int b = 0; b < 8; ++b) h = (h ^ ((uint64_t(c) >> (8 * b)) & 0xff)) * 1099511628211ull;
  return h >> 2;
}

void CallCheck::start(MPI_Comm comm, const CallInfo& info, int64_t count, uint64_t extra) {
  comm_ = comm;
  info_ = info;
  if (comm == MPI_COMM_NULL) return;
  mine_[0] = int64_t(pack_call(info));
  mine_[1] = count;
  mine_[2] = int64_t(info.seq);
  mine_[3] = int64_t(extra);
  for (int i = 0; i < kWords; ++i) {
    words_[i] = mine_[i];
    words_[i + kWords] = -mine_[i];
  }
  if (MPI_Iallreduce(MPI_IN_PLACE, words_, 2 * kWords, MPI_INT64_T, MPI_MAX, comm, &req_) != MPI_SUCCESS)
    throw CommError("MPI_Iallreduce (collective agreement check) failed");
  phase_ = 1;
}

bool CallCheck::done() {
  if (phase_ == 0) return true;
  if (!test(req_)) return false;
  if (phase_ == 1) {
    bool agree = true;
    for (int i = 0; i < kWords; ++i) agree = agree && words_[i] == -words_[i + kWords];
    if (agree) {
      phase_ = 0;
      return true;
    }
    // Every rank saw the same maxima, so every rank takes this branch: the allgather matches.
    int n = 1;
    MPI_Comm_size(comm_, &n);
    all_.resize(size_t(n) * kWords);
    if (MPI_Iallgather(mine_, kWords, MPI_INT64_T, all_.data(), kWords, MPI_INT64_T, comm_, &req_) != MPI_SUCCESS)
      throw CommError("MPI_Iallgather (collective agreement check) failed");
    phase_ = 2;
    if (!test(req_)) return false;
  }
  phase_ = 0;
  throw CommError(disagreement());
}

std::string CallCheck::disagreement() const {
  const int n = int(all_.size() / kWords);
  const int64_t* zero = all_.data();
  for (int r = 1; r < n; ++r) {
    const int64_t* theirs = all_.data() + size_t(r) * kWords;
    if (theirs[0] == zero[0] && theirs[1] == zero[1] && theirs[2] == zero[2] && theirs[3] == zero[3]) continue;
    std::string msg = "ranks disagree on a collective: rank 0 called " + describe_words(zero) + " but rank " +
                      std::to_string(r) + " called " + describe_words(theirs);
    if (theirs[0] == zero[0] && theirs[1] == zero[1] && theirs[2] == zero[2])
      msg += " with other per-rank counts";
    return msg;
  }
  return "ranks disagree on " + info_.describe();  // unreachable: the maxima said they differ
}

bool CallCheck::drain() { return req_ == MPI_REQUEST_NULL || test(req_); }

}  // namespace mpitrain::detail
