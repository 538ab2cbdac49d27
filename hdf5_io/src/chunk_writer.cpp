#include "chunk_writer.hpp"

#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "error_stack.hpp"
#include "hdf5_io/tensor_io.hpp"

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

uint32_t fletcher32(const uint8_t* p, size_t len) {
  Fletcher f;
  for (; len >= kBlockBytes; p += kBlockBytes, len -= kBlockBytes) f.block(p, kBlockWords);
  return f.finish(p, len);
}

namespace {

struct Staged {
  size_t index = 0;
  std::vector<uint8_t> bytes;  // the chunk (an edge chunk padded with zeros) + 4 checksum bytes
};

void stage(Staged& s, size_t index, const uint8_t* data, size_t rows, size_t row_bytes, size_t rows_per_chunk) {
  const size_t chunk_bytes = rows_per_chunk * row_bytes;
  const size_t first = index * rows_per_chunk, n = std::min(rows_per_chunk, rows - first);
  s.index = index;
  s.bytes.resize(chunk_bytes + 4);
  uint8_t* dst = s.bytes.data();
  const uint8_t* src = data + first * row_bytes;
  uint32_t sum;
  if (n == rows_per_chunk) {
    // Copy and checksum in one pass: each block is summed while it is still in L1.
    Fletcher f;
    size_t done = 0;
    for (; chunk_bytes - done >= kBlockBytes; done += kBlockBytes) {
      std::memcpy(dst + done, src + done, kBlockBytes);
      f.block(dst + done, kBlockWords);
    }
    std::memcpy(dst + done, src + done, chunk_bytes - done);
    sum = f.finish(dst + done, chunk_bytes - done);
  } else {  // the edge chunk: padded with zeros, which the checksum covers too
    std::memcpy(dst, src, n * row_bytes);
    std::memset(dst + n * row_bytes, 0, chunk_bytes - n * row_bytes);
    sum = fletcher32(dst, chunk_bytes);
  }
  const uint8_t le[4] = {uint8_t(sum), uint8_t(sum >> 8), uint8_t(sum >> 16), uint8_t(sum >> 24)};  // stored LE
  std::memcpy(dst + chunk_bytes, le, 4);
}

}  // namespace

void write_chunks(const H5::DataSet& ds, int rank, const uint8_t* data, size_t rows, size_t row_bytes,
                  size_t rows_per_chunk) {
  const size_t chunks = (rows + rows_per_chunk - 1) / rows_per_chunk;
  auto put = [&](const Staged& s) {
    std::vector<hsize_t> offset(size_t(rank), 0);
    offset[0] = hsize_t(s.index * rows_per_chunk);
    if (H5Dwrite_chunk(ds.getId(), H5P_DEFAULT, 0, offset.data(), s.bytes.size(), s.bytes.data()) < 0)
      throw CheckpointError(hdf5_cause("cannot write chunk " + std::to_string(s.index) + " of " + ds.getObjName()));
  };
  if (chunks < 4) {  // not worth a thread
    Staged s;
    for (size_t i = 0; i < chunks; ++i) {
      stage(s, i, data, rows, row_bytes, rows_per_chunk);
      put(s);
    }
    return;
  }
  // A helper thread stages chunks ahead (bounded), this thread writes them in order; HDF5 is only
  // ever called from this thread.
  constexpr size_t kAhead = 3;
  std::mutex m;
  std::condition_variable cv;
  std::deque<Staged> ready, spare(kAhead);
  bool stop = false;
  std::exception_ptr error;
  std::thread helper([&] {
    try {
      for (size_t i = 0; i < chunks; ++i) {
        Staged s;
        {
          std::unique_lock<std::mutex> lock(m);
          cv.wait(lock, [&] { return stop || !spare.empty(); });
          if (stop) return;
          s = std::move(spare.front());
          spare.pop_front();
        }
        stage(s, i, data, rows, row_bytes, rows_per_chunk);
        std::lock_guard<std::mutex> lock(m);
        ready.push_back(std::move(s));
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
      Staged s;
      {
        std::unique_lock<std::mutex> lock(m);
        cv.wait(lock, [&] { return error || !ready.empty(); });
        if (error) std::rethrow_exception(error);
        s = std::move(ready.front());
        ready.pop_front();
      }
      put(s);
      std::lock_guard<std::mutex> lock(m);
      spare.push_back(std::move(s));
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

}  // namespace hdf5_io::detail
