// Reading Fletcher-32-filtered datasets fast: HDF5's filter pipeline reads each chunk into a
// buffer, checksums it byte by byte (~1.4 GB/s here) and copies it out, all on one thread.
// Instead each chunk is read raw (H5Dread_chunk) straight into the tensor's memory and its
// checksum verified on a helper thread while the next chunk is read. A chunk's stored checksum
// lands on the first 4 bytes of the next chunk's place, which that chunk's read then overwrites.
#pragma once
#include <H5Cpp.h>

#include <cstddef>
#include <cstdint>

namespace hdf5_io::detail {

/// Reads the whole of `ds` into `out` (rows x row_bytes, row-major) if it is stored the way
/// write_chunks stores it: chunked along dimension 0 only, Fletcher-32 as its only filter, and a
/// file type whose bytes `mem_type` reads unchanged. Returns false, having read nothing, if not
/// (the caller reads through HDF5's pipeline). A failed checksum raises CheckpointError.
bool read_chunks(const H5::DataSet& ds, const H5::DataType& mem_type, uint8_t* out, size_t rows, size_t row_bytes);

}  // namespace hdf5_io::detail
