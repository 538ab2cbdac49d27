#include "chunk_reader.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "chunk_writer.hpp"
#include "error_stack.hpp"
#include "hdf5_io/tensor_io.hpp"

namespace hdf5_io::detail {

namespace {

uint32_t load_le(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

/// Rows per chunk if `ds` is chunked along dimension 0 only with Fletcher-32 as its only filter.
size_t fletcher_rows_per_chunk(const H5::DataSet& ds, const H5::DataType& mem_type, size_t rows) {
  const hid_t dcpl = H5Dget_create_plist(ds.getId());
  if (dcpl < 0) return 0;
  size_t per_chunk = 0;
  unsigned flags = 0;
  size_t n_values = 0;
  unsigned config = 0;
  const int rank = H5Pget_layout(dcpl) == H5D_CHUNKED ? ds.getSpace().getSimpleExtentNdims() : 0;
  if (rank > 0 && H5Pget_nfilters(dcpl) == 1 &&
      H5Pget_filter2(dcpl, 0, &flags, &n_values, nullptr, 0, nullptr, &config) == H5Z_FILTER_FLETCHER32) {
    std::vector<hsize_t> chunk(static_cast<size_t>(rank)), dims(static_cast<size_t>(rank));
    ds.getSpace().getSimpleExtentDims(dims.data());
    if (H5Pget_chunk(dcpl, rank, chunk.data()) == rank && dims[0] == rows &&
        std::equal(chunk.begin() + 1, chunk.end(), dims.begin() + 1) && chunk[0] > 0)
      per_chunk = size_t(chunk[0]);
  }
  H5Pclose(dcpl);
  // The stored bytes must be the memory bytes: same type, byte order and size.
  const H5::DataType file_type = ds.getDataType();
  if (per_chunk > 0 && H5Tequal(file_type.getId(), mem_type.getId()) <= 0) per_chunk = 0;
  return per_chunk;
}

}  // namespace

bool read_chunks(const H5::DataSet& ds, const H5::DataType& mem_type, uint8_t* out, size_t rows, size_t row_bytes) {
  const size_t rows_per_chunk = fletcher_rows_per_chunk(ds, mem_type, rows);
  if (rows_per_chunk == 0 || rows == 0 || row_bytes == 0) return false;
  const int rank = ds.getSpace().getSimpleExtentNdims();
  const size_t chunks = (rows + rows_per_chunk - 1) / rows_per_chunk;
  const size_t chunk_bytes = rows_per_chunk * row_bytes, total = rows * row_bytes;
  auto fail = [&](size_t i, const std::string& what) {
    return CheckpointError("cannot read dataset " + ds.getObjName() + " (corrupt or truncated?): chunk " +
                           std::to_string(i) + ": " + what);
  };

  // Verification of chunk i (on the helper thread when there are several): its bytes and the sum
  // stored after them, saved before the next chunk's read overwrote it.
  struct Check {
    const uint8_t* bytes = nullptr;
    uint32_t stored = 0;
  };
  std::vector<Check> checks(chunks);
  // Chunks with no 4 bytes of `out` after them (the last; with rows under 4 bytes, the one before
  // too) are read into buffers of their own, kept until verified.
  std::vector<std::vector<uint8_t>> edges;
  std::mutex m;
  std::condition_variable cv;
  size_t ready = 0;
  bool stop = false;
  size_t bad = SIZE_MAX;
  auto verify = [&](size_t i) {
    return fletcher32(checks[i].bytes, chunk_bytes) == checks[i].stored;
  };
  std::thread helper;
  if (chunks >= 4)
    helper = std::thread([&] {
      for (size_t i = 0; i < chunks; ++i) {
        {
          std::unique_lock<std::mutex> lock(m);
          cv.wait(lock, [&] { return stop || ready > i; });
          if (stop && ready <= i) return;
        }
        if (!verify(i)) {
          std::lock_guard<std::mutex> lock(m);
          bad = std::min(bad, i);
          return;
        }
      }
    });
  auto finish_helper = [&] {
    if (!helper.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(m);
      stop = true;
      cv.notify_all();
    }
    helper.join();
  };
  try {
    std::vector<hsize_t> offset(size_t(rank), 0);
    for (size_t i = 0; i < chunks; ++i) {
      offset[0] = hsize_t(i * rows_per_chunk);
      hsize_t stored = 0;
      if (H5Dget_chunk_storage_size(ds.getId(), offset.data(), &stored) < 0)
        throw fail(i, hdf5_cause("H5Dget_chunk_storage_size failed"));
      if (stored != chunk_bytes + 4) throw fail(i, "stored as " + std::to_string(stored) + " bytes, not " +
                                                       std::to_string(chunk_bytes + 4));
      const size_t begin = i * chunk_bytes;
      const bool in_place = begin + chunk_bytes + 4 <= total;
      uint8_t* dst = out + begin;
      if (!in_place) dst = edges.emplace_back(chunk_bytes + 4).data();
      uint32_t mask = 0;
      if (H5Dread_chunk(ds.getId(), H5P_DEFAULT, offset.data(), &mask, dst) < 0)
        throw fail(i, hdf5_cause("H5Dread_chunk failed"));
      if (mask != 0) throw fail(i, "its Fletcher-32 filter was skipped when it was written");
      checks[i] = {dst, load_le(dst + chunk_bytes)};
      if (!in_place) std::memcpy(out + begin, dst, std::min(chunk_bytes, total - begin));  // rows, no padding
      if (helper.joinable()) {
        std::lock_guard<std::mutex> lock(m);
        ready = i + 1;
        if (bad != SIZE_MAX) break;  // the helper found a bad chunk: stop reading
        cv.notify_all();
      } else if (!verify(i)) {
        bad = i;
        break;
      }
    }
  } catch (...) {
    finish_helper();
    throw;
  }
  finish_helper();
  if (bad != SIZE_MAX) throw fail(bad, "data error detected by Fletcher32 checksum");
  return true;
}

}  // namespace hdf5_io::detail
