// Node-local shared memory: one MPI-3 shared window holding one slot per local rank. Slots are
// page aligned and first touched by their owner. Used for the control lines, the staging ring
// of the copy-in path, and the user-visible SharedBuffers of the zero-copy path.
#pragma once
#include <mpi.h>

#include <cstddef>
#include <vector>

namespace mpitrain::detail {

class ShmRegion {
 public:
  /// Collective over `node_comm` (every process must share memory with every other).
  ShmRegion(MPI_Comm node_comm, size_t slot_bytes);
  ~ShmRegion();  // collective too (MPI_Win_free): the Communicator frees regions in creation order
  ShmRegion(const ShmRegion&) = delete;
  ShmRegion& operator=(const ShmRegion&) = delete;

  char* slot(int local_rank) const { return base_ + size_t(local_rank) * slot_bytes_; }
  size_t slot_bytes() const { return slot_bytes_; }
  int slots() const { return nslots_; }
  /// True when [p, p+bytes) lies in slot `local_rank`; sets *offset to p's offset in it.
  bool contains(int local_rank, const void* p, size_t bytes, size_t* offset) const;

 private:
  MPI_Win win_ = MPI_WIN_NULL;
  char* base_ = nullptr;
  size_t slot_bytes_ = 0;
  int nslots_ = 0;
};

}  // namespace mpitrain::detail
