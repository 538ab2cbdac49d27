#include "shm_region.hpp"

#include <cstdint>
#include <cstring>
#include <string>

#include "mpitrain/errors.hpp"

namespace mpitrain::detail {

namespace {
constexpr size_t kPage = 4096;
size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }
void check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    throw CommError(std::string("shared window: ") + what + " failed: " + std::string(msg, size_t(len)));
  }
}
}  // namespace

ShmRegion::ShmRegion(MPI_Comm node_comm, size_t slot_bytes) {
  int local_rank = 0;
  MPI_Comm_rank(node_comm, &local_rank);
  MPI_Comm_size(node_comm, &nslots_);
  slot_bytes_ = round_up(slot_bytes == 0 ? 1 : slot_bytes, kPage);
  // One allocation on local rank 0 so the slots are contiguous; Open MPI 4.1's window base is
  // only 8-byte aligned, so allocate a page more and align by hand.
  const size_t total = size_t(nslots_) * slot_bytes_ + kPage;
  void* mine = nullptr;
  MPI_Info info;
  MPI_Info_create(&info);
  MPI_Info_set(info, "alloc_shared_noncontig", "false");
  int rc = MPI_Win_allocate_shared(MPI_Aint(local_rank == 0 ? total : 0), 1, info, node_comm, &mine, &win_);
  MPI_Info_free(&info);
  check(rc, "MPI_Win_allocate_shared");
  MPI_Aint size = 0;
  int disp = 0;
  char* base = nullptr;
  check(MPI_Win_shared_query(win_, 0, &size, &disp, &base), "MPI_Win_shared_query");
  base_ = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(base) + kPage - 1) & ~uintptr_t(kPage - 1));
  // Passive-target epoch for the window's lifetime: ranks then read and write it directly,
  // ordered by the release/acquire flags of ShmChannel.
  check(MPI_Win_lock_all(MPI_MODE_NOCHECK, win_), "MPI_Win_lock_all");
  // First touch by the owner: the page faults are paid here, not in the first collective.
  std::memset(slot(local_rank), 0, slot_bytes_);
  MPI_Barrier(node_comm);
}

ShmRegion::~ShmRegion() {
  if (win_ == MPI_WIN_NULL) return;
  MPI_Win_unlock_all(win_);
  MPI_Win_free(&win_);
}

bool ShmRegion::contains(int local_rank, const void* p, size_t bytes, size_t* offset) const {
  auto a = reinterpret_cast<uintptr_t>(p), s = reinterpret_cast<uintptr_t>(slot(local_rank));
  if (a < s || a + bytes > s + slot_bytes_) return false;
  *offset = a - s;
  return true;
}

}  // namespace mpitrain::detail
