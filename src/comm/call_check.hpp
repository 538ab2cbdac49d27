// Agreement on an MPI-path collective before its data moves (CommOptions::verify_mpi_calls).
// Shared-memory collectives compare descriptors in the control slots; collectives that go
// through MPI have no such place, and a mismatch there (another count, root or dtype) hangs, or
// worse, completes with garbage. One MAX-allreduce of (descriptor, -descriptor) on a dedicated
// communicator tells every rank whether all agree (max == -min, word by word); on a disagreement
// an allgather of the descriptors lets every rank name the same pair of ranks in its error.
#pragma once
#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "task.hpp"

namespace mpitrain::detail {

class CallCheck {
 public:
  static constexpr int kWords = 4;  // kind|dtype|op|root, count, seq, extra
  /// Starts the check on `comm` (MPI_COMM_NULL: no check, done() is true at once). `count` is
  /// what every rank must agree on (allgatherv: the total), `extra` any further word (allgatherv:
  /// a hash of the per-rank counts).
  void start(MPI_Comm comm, const CallInfo& info, int64_t count, uint64_t extra = 0);
  /// True once every rank agreed. Throws CommError naming the first rank that differs from rank 0.
  bool done();
  /// After a failure: tests the outstanding request only.
  bool drain();

 private:
  std::string disagreement() const;

  MPI_Comm comm_ = MPI_COMM_NULL;
  CallInfo info_;
  int64_t mine_[kWords] = {};
  int64_t words_[2 * kWords] = {};
  std::vector<int64_t> all_;  // every rank's words, once a disagreement was seen
  MPI_Request req_ = MPI_REQUEST_NULL;
  int phase_ = 0;  // 0 idle/agreed, 1 allreduce pending, 2 allgather pending
};

/// A hash of allgatherv's counts (FNV-1a, 62 bits so that its negation stays in range).
uint64_t counts_hash(const std::vector<int64_t>& counts);

}  // namespace mpitrain::detail
