// Writing chunked, Fletcher-32-filtered datasets fast: HDF5's filter pipeline copies every chunk
// and checksums it byte by byte (~1.4 GB/s here) on the one thread that also issues the writes.
// Instead a helper thread checksums chunks ahead (5+ GB/s) while this thread hands them to
// H5Dwrite_chunk straight from the tensor's memory, patching each checksum into the file after
// it; only chunks with no 4 bytes after them are copied. Writeback to disk is started as the
// file grows, so the closing fsync waits for little. The stored bytes are exactly what the filter
// would have produced (HDF5, h5py and every reader verify them as usual).
#pragma once
#include <H5Cpp.h>

#include <cstddef>
#include <cstdint>

namespace hdf5_io::detail {

/// What to add to a chunk address from H5Dget_chunk_info* to get its offset in `file`: the user
/// block's size before HDF5 1.14.4, which made those addresses absolute (HDF5 issue #3003).
hsize_t chunk_address_base(hid_t file);

/// Fletcher-32 exactly as HDF5's filter computes it (big-endian 16-bit words, 360-word blocks).
uint32_t fletcher32(const uint8_t* data, size_t len);

/// Writes `rows` rows of `row_bytes` each (row-major `data`) as consecutive chunks of
/// `rows_per_chunk` rows (the dataset's chunk shape spans whole rows; the last chunk is padded
/// with zeros) through H5Dwrite_chunk, each with its checksum appended. `rank`: the dataset's.
/// `data` must not change until this returns (checksums are computed ahead of the writes).
void write_chunks(const H5::DataSet& ds, int rank, const uint8_t* data, size_t rows, size_t row_bytes,
                  size_t rows_per_chunk);

}  // namespace hdf5_io::detail
