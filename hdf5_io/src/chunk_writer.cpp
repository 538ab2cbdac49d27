#include "chunk_writer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "error_stack.hpp"
#include "hdf5_io/tensor_io.hpp"

static_assert(sizeof(off_t) == 8, "files over 2 GiB need a 64-bit off_t");

namespace hdf5_io::detail {

namespace {

constexpr size_t kBlockWords = 360, kBlockBytes = 2 * kBlockWords;  // HDF5's block: sums stay in 32 bits

struct Fletcher {
  uint32_t s1 = 0, s2 = 0;
  // One block of n <= 360 big-endian words. Within it, sum2 gains n * sum1 + sum((n - i) * w_i):
  // no serial dependency, so the compiler vectorises it. Arithmetic modulo 2^32, as HDF5's loop.
  void block(const uint8_t* p, uint32_t n) {
    uint32_t a = 0, b = 0;
    for (uint32_t i = 0; i < n; ++i) {
      const uint32_t w = (uint32_t(p[2 * i]) << 8) | p[2 * i + 1];
      a += w;
      b += (n - i) * w;
    }
    s2 += n * s1 + b;
    s1 += a;
    s1 = (s1 & 0xffff) + (s1 >> 16);
    s2 = (s2 & 0xffff) + (s2 >> 16);
  }
  // The bytes after the last whole block (fewer than 720): remaining words, then an odd byte.
  uint32_t finish(const uint8_t* p, size_t len) {
    if (len / 2) block(p, uint32_t(len / 2));
    if (len % 2) {
      s1 += uint32_t(p[len - 1]) << 8;
      s2 += s1;
      s1 = (s1 & 0xffff) + (s1 >> 16);
      s2 = (s2 & 0xffff) + (s2 >> 16);
    }
    s1 = (s1 & 0xffff) + (s1 >> 16);
    s2 = (s2 & 0xffff) + (s2 >> 16);
    return (s2 << 16) | s1;
  }
};

}  // namespace

hsize_t chunk_address_base(hid_t file) {
  unsigned major = 0, minor = 0, release = 0;
  H5get_libversion(&major, &minor, &release);
  if (std::make_tuple(major, minor, release) >= std::make_tuple(1u, 14u, 4u)) return 0;
  hsize_t userblock = 0;
  const hid_t fcpl = H5Fget_create_plist(file);
  if (fcpl >= 0) {
    H5Pget_userblock(fcpl, &userblock);
    H5Pclose(fcpl);
  }
  return userblock;
}

uint32_t fletcher32(const uint8_t* p, size_t len) {
  Fletcher f;
  for (; len >= kBlockBytes; p += kBlockBytes, len -= kBlockBytes) f.block(p, kBlockWords);
  return f.finish(p, len);
}

namespace {

/// One chunk ready for the writing thread: its checksum and, unless it is written straight from
/// the caller's memory, the staged bytes (the chunk, zero padding, then the checksum).
struct Job {
  size_t index = 0;
  uint32_t sum = 0;
  bool in_place = false;
  std::vector<uint8_t> bytes;
};

void store_le(uint8_t* dst, uint32_t v) {  // HDF5 stores the checksum little-endian
  const uint8_t le[4] = {uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)};
  std::memcpy(dst, le, 4);
}

/// Copies chunk `index` into `bytes` and checksums it in one pass (each block is summed while it
/// is still in L1); an edge chunk is padded with zeros, which the checksum covers too.
uint32_t stage(std::vector<uint8_t>& bytes, const uint8_t* src, size_t n_bytes, size_t chunk_bytes) {
  bytes.resize(chunk_bytes + 4);
  uint8_t* dst = bytes.data();
  uint32_t sum;
  if (n_bytes == chunk_bytes) {
    Fletcher f;
    size_t done = 0;
    for (; chunk_bytes - done >= kBlockBytes; done += kBlockBytes) {
      std::memcpy(dst + done, src + done, kBlockBytes);
      f.block(dst + done, kBlockWords);
    }
    std::memcpy(dst + done, src + done, chunk_bytes - done);
    sum = f.finish(dst + done, chunk_bytes - done);
  } else {
    std::memcpy(dst, src, n_bytes);
    std::memset(dst + n_bytes, 0, chunk_bytes - n_bytes);
    sum = fletcher32(dst, chunk_bytes);
  }
  store_le(dst + chunk_bytes, sum);
  return sum;
}

/// Where raw bytes of the file go: its POSIX descriptor when it uses HDF5's default (sec2)
/// driver with no page buffer (which could hold a chunk's bytes and write them back over the
/// patched checksum), else -1; and the base to add to chunk addresses.
struct PosixTarget {
  int fd = -1;
  hsize_t base = 0;
};

PosixTarget posix_target(const H5::DataSet& ds) {
  PosixTarget t;
  const hid_t file = H5Iget_file_id(ds.getId());
  if (file < 0) return t;
  const hid_t fapl = H5Fget_access_plist(file);
  size_t page_buffer = 0;
  if (fapl >= 0 && H5Pget_driver(fapl) == H5FD_SEC2 && H5Pget_page_buffer_size(fapl, &page_buffer, nullptr, nullptr) >= 0 &&
      page_buffer == 0) {
    void* handle = nullptr;
    if (H5Fget_vfd_handle(file, fapl, &handle) >= 0 && handle) t.fd = *static_cast<int*>(handle);
    t.base = chunk_address_base(file);
  }
  if (fapl >= 0) H5Pclose(fapl);
  H5Fclose(file);  // only drops the reference H5Iget_file_id took
  return t;
}

/// True if the file holds the `n` bytes `expected` at `offset`.
bool holds(int fd, off_t offset, const uint8_t* expected, size_t n) {
  uint8_t got[64];
  return n <= sizeof got && ::pread(fd, got, n, offset) == ssize_t(n) && std::memcmp(got, expected, n) == 0;
}

/// Starts the disk writing what is dirty so far without waiting for it, so the final fsync finds
/// little left to do (writeback overlaps the rest of the save instead of following it).
void start_writeback(int fd) {
#ifdef __linux__
  if (fd >= 0) ::sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
#else
  (void)fd;
#endif
}

constexpr size_t kWritebackBytes = size_t(8) << 20;

}  // namespace

void write_chunks(const H5::DataSet& ds, int rank, const uint8_t* data, size_t rows, size_t row_bytes,
                  size_t rows_per_chunk) {
  const size_t chunks = (rows + rows_per_chunk - 1) / rows_per_chunk;
  const size_t chunk_bytes = rows_per_chunk * row_bytes, total = rows * row_bytes;
  const PosixTarget target = posix_target(ds);
  const int fd = target.fd;

  // A whole chunk followed by at least 4 more bytes of the tensor is written straight from the
  // tensor's memory: H5Dwrite_chunk stores it with the next 4 bytes in the checksum's place, and
  // those 4 bytes are then overwritten in the file with the checksum (one small pwrite), so the
  // data is never copied in user space. Others (the last, padded or not; files not on sec2) are
  // staged. Either way the file ends up holding exactly what HDF5's filter would have written.
  auto make_job = [&](size_t i, Job& job) {
    job.index = i;
    const size_t begin = i * chunk_bytes, n_bytes = std::min(chunk_bytes, total - begin);
    job.in_place = fd >= 0 && chunk_bytes >= 64 && n_bytes == chunk_bytes && begin + chunk_bytes + 4 <= total;
    job.sum = job.in_place ? fletcher32(data + begin, chunk_bytes) : stage(job.bytes, data + begin, n_bytes, chunk_bytes);
  };
  size_t since_writeback = 0;
  auto put = [&](const Job& job) {
    std::vector<hsize_t> offset(size_t(rank), 0);
    offset[0] = hsize_t(job.index * rows_per_chunk);
    const void* src = job.in_place ? static_cast<const void*>(data + job.index * chunk_bytes) : job.bytes.data();
    const auto fail = [&](const std::string& what) {
      return CheckpointError(hdf5_cause("cannot write chunk " + std::to_string(job.index) + " of " +
                                        ds.getObjName() + what));
    };
    if (H5Dwrite_chunk(ds.getId(), H5P_DEFAULT, 0, offset.data(), chunk_bytes + 4, src) < 0) throw fail("");
    if (job.in_place) {
      unsigned mask = 0;
      haddr_t addr = HADDR_UNDEF;
      hsize_t stored = 0;
      // The chunk must be where HDF5 says (its first 64 bytes, and the 64 ending with the stand-ins
      // for the checksum, read back) before anything is written there: a wrong address would
      // corrupt the file. (chunk_bytes >= 64 whenever a chunk is written in place.)
      const uint8_t* chunk = data + job.index * chunk_bytes;
      if (H5Dget_chunk_info_by_coord(ds.getId(), offset.data(), &mask, &addr, &stored) < 0 ||
          addr == HADDR_UNDEF || stored != chunk_bytes + 4 || !holds(fd, off_t(target.base + addr), chunk, 64) ||
          !holds(fd, off_t(target.base + addr + chunk_bytes + 4 - 64), chunk + chunk_bytes + 4 - 64, 64))
        throw fail(" (cannot locate it in the file to store its checksum)");
      uint8_t le[4];
      store_le(le, job.sum);
      const ssize_t n = ::pwrite(fd, le, 4, off_t(target.base + addr + chunk_bytes));
      if (n != 4) throw fail(std::string(" (checksum: ") + (n < 0 ? std::strerror(errno) : "short write") + ")");
    }
    if ((since_writeback += chunk_bytes) >= kWritebackBytes) {
      start_writeback(fd);
      since_writeback = 0;
    }
  };
  if (chunks < 4) {  // not worth a thread
    Job job;
    for (size_t i = 0; i < chunks; ++i) {
      make_job(i, job);
      put(job);
    }
  } else {
    // A helper thread checksums (and, where needed, stages) chunks ahead, bounded; this thread
    // writes them in order. HDF5 is only ever called from this thread.
    constexpr size_t kAhead = 3;
    std::mutex m;
    std::condition_variable cv;
    std::deque<Job> ready, spare(kAhead);
    bool stop = false;
    std::exception_ptr error;
    std::thread helper([&] {
      try {
        for (size_t i = 0; i < chunks; ++i) {
          Job job;
          {
            std::unique_lock<std::mutex> lock(m);
            cv.wait(lock, [&] { return stop || !spare.empty(); });
            if (stop) return;
            job = std::move(spare.front());
            spare.pop_front();
          }
          make_job(i, job);
          std::lock_guard<std::mutex> lock(m);
          ready.push_back(std::move(job));
          cv.notify_all();
        }
      } catch (...) {
        std::lock_guard<std::mutex> lock(m);
        error = std::current_exception();
        cv.notify_all();
      }
    });
    try {
      for (size_t i = 0; i < chunks; ++i) {
        Job job;
        {
          std::unique_lock<std::mutex> lock(m);
          cv.wait(lock, [&] { return error || !ready.empty(); });
          if (error) std::rethrow_exception(error);
          job = std::move(ready.front());
          ready.pop_front();
        }
        put(job);
        std::lock_guard<std::mutex> lock(m);
        spare.push_back(std::move(job));
        cv.notify_all();
      }
    } catch (...) {
      {
        std::lock_guard<std::mutex> lock(m);
        stop = true;
        cv.notify_all();
      }
      helper.join();
      throw;
    }
    helper.join();
  }
  if (since_writeback >= kWritebackBytes / 8) start_writeback(fd);  // not for every small tensor
}

}  // namespace hdf5_io::detail
