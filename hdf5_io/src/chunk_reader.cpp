#include "chunk_reader.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <system_error>
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

/// Rows per chunk if `ds` is chunked along dimension 0 only, with Fletcher-32 as its only filter
/// and a file type whose bytes are the memory bytes (same type, byte order and size); else 0.
size_t fletcher_rows_per_chunk(const H5::DataSet& ds, const H5::DataType& mem_type, std::vector<hsize_t>& dims) {
  const hid_t dcpl = H5Dget_create_plist(ds.getId()), space = H5Dget_space(ds.getId());
  size_t per_chunk = 0;
  const int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
  if (dcpl >= 0 && rank > 0 && H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_nfilters(dcpl) == 1) {
    unsigned flags = 0, config = 0;
    size_t n_values = 0;
    std::vector<hsize_t> chunk(static_cast<size_t>(rank));
    dims.assign(static_cast<size_t>(rank), 0);
    if (H5Pget_filter2(dcpl, 0, &flags, &n_values, nullptr, 0, nullptr, &config) == H5Z_FILTER_FLETCHER32 &&
        H5Sget_simple_extent_dims(space, dims.data(), nullptr) == rank && H5Pget_chunk(dcpl, rank, chunk.data()) == rank &&
        std::equal(chunk.begin() + 1, chunk.end(), dims.begin() + 1) && chunk[0] > 0)
      per_chunk = size_t(chunk[0]);
  }
  if (dcpl >= 0) H5Pclose(dcpl);
  if (space >= 0) H5Sclose(space);
  const hid_t file_type = H5Dget_type(ds.getId());
  if (per_chunk > 0 && (file_type < 0 || H5Tequal(file_type, mem_type.getId()) <= 0)) per_chunk = 0;
  if (file_type >= 0) H5Tclose(file_type);
  return per_chunk;
}

/// True if every chunk is allocated, filtered (mask 0) and stored as `stored_bytes`: anything else
/// (never-written chunks read as fill values, partial chunks left unfiltered) is HDF5's to read.
bool every_chunk_stored_as(const H5::DataSet& ds, size_t chunks, size_t rows_per_chunk, size_t rank, hsize_t stored_bytes) {
  std::vector<hsize_t> offset(rank, 0);
  for (size_t i = 0; i < chunks; ++i) {
    offset[0] = hsize_t(i * rows_per_chunk);
    unsigned mask = 0;
    haddr_t addr = HADDR_UNDEF;
    hsize_t size = 0;
    if (H5Dget_chunk_info_by_coord(ds.getId(), offset.data(), &mask, &addr, &size) < 0 || addr == HADDR_UNDEF ||
        mask != 0 || size != stored_bytes)
      return false;
  }
  return true;
}

/// HDF5 also accepts the checksum with the bytes of each half swapped, as HDF5 <= 1.6.2 wrote it.
bool checksum_matches(uint32_t computed, uint32_t stored) {
  const uint32_t reversed = ((computed & 0x00ff00ffu) << 8) | ((computed & 0xff00ff00u) >> 8);
  return stored == computed || stored == reversed;
}

}  // namespace

bool read_chunks(const H5::DataSet& ds, const H5::DataType& mem_type, uint8_t* out, size_t rows, size_t row_bytes) {
  std::vector<hsize_t> dims;
  const size_t rows_per_chunk = fletcher_rows_per_chunk(ds, mem_type, dims);
  if (rows_per_chunk == 0 || rows == 0 || row_bytes == 0 || dims[0] != rows) return false;
  const size_t chunks = (rows + rows_per_chunk - 1) / rows_per_chunk;
  const size_t chunk_bytes = rows_per_chunk * row_bytes, total = rows * row_bytes;
  if (!every_chunk_stored_as(ds, chunks, rows_per_chunk, dims.size(), chunk_bytes + 4)) return false;
  auto fail = [&](size_t i, const std::string& what) {
    return CheckpointError("cannot read dataset " + ds.getObjName() + " (corrupt or truncated?): chunk " +
                           std::to_string(i) + ": " + what);
  };

  // Chunk i is verified over its bytes (padding included) against the sum stored after them, saved
  // before the next chunk's read overwrote it.
  struct Check {
    const uint8_t* bytes = nullptr;
    uint32_t stored = 0;
  };
  std::vector<Check> checks(chunks);
  // Chunks with no 4 bytes of `out` after them (the last; with chunks under 4 bytes, those before
  // it too) are read into buffers of their own, kept until verified. Reserved: the checks point in.
  std::vector<std::vector<uint8_t>> edges;
  edges.reserve(std::min(chunks, size_t(4) / chunk_bytes + 2));
  auto verify = [&](size_t i) { return checksum_matches(fletcher32(checks[i].bytes, chunk_bytes), checks[i].stored); };

  // A helper thread verifies the chunks read so far while the next is read (when there are several).
  std::mutex m;
  std::condition_variable cv;
  size_t ready = 0, bad = SIZE_MAX;
  bool done = false, abort = false;
  std::thread helper;
  if (chunks >= 4) {
    try {
      helper = std::thread([&] {
        for (size_t i = 0; i < chunks; ++i) {
          {
            std::unique_lock<std::mutex> lock(m);
            cv.wait(lock, [&] { return abort || done || ready > i; });
            if (abort || ready <= i) return;
          }
          if (!verify(i)) {
            std::lock_guard<std::mutex> lock(m);
            bad = std::min(bad, i);
            return;
          }
        }
      });
    } catch (const std::system_error&) {  // no thread to be had: verify inline
    }
  }
  auto stop_helper = [&](bool abandon) {
    if (!helper.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(m);
      (abandon ? abort : done) = true;
      cv.notify_all();
    }
    helper.join();
  };
  try {
    std::vector<hsize_t> offset(dims.size(), 0);
    for (size_t i = 0; i < chunks; ++i) {
      offset[0] = hsize_t(i * rows_per_chunk);
      const size_t begin = i * chunk_bytes;
      const bool in_place = begin + chunk_bytes + 4 <= total;
      uint8_t* dst = in_place ? out + begin : edges.emplace_back(chunk_bytes + 4).data();
      uint32_t mask = 0;
      if (H5Dread_chunk(ds.getId(), H5P_DEFAULT, offset.data(), &mask, dst) < 0)
        throw fail(i, hdf5_cause("H5Dread_chunk failed"));
      checks[i] = {dst, load_le(dst + chunk_bytes)};
      if (!in_place) std::memcpy(out + begin, dst, std::min(chunk_bytes, total - begin));  // rows, no padding
      if (helper.joinable()) {
        std::lock_guard<std::mutex> lock(m);
        if (bad != SIZE_MAX) break;  // the helper found a bad chunk: stop reading
        ready = i + 1;
        cv.notify_all();
      } else if (!verify(i)) {
        bad = i;
        break;
      }
    }
  } catch (...) {
    stop_helper(true);
    if (bad != SIZE_MAX) throw fail(bad, "data error detected by Fletcher32 checksum");  // the first cause
    throw;
  }
  stop_helper(bad != SIZE_MAX);
  if (bad != SIZE_MAX) throw fail(bad, "data error detected by Fletcher32 checksum");
  return true;
}

}  // namespace hdf5_io::detail
