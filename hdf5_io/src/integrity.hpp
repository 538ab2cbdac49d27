// Whole-dataset integrity beyond HDF5's own checksums. The 1.8 format's chunk index (a v1
// B-tree) has no checksum: a flipped byte in a chunk's offset key re-keys the chunk (its rows read
// back as fill values), one in its filter mask skips the Fletcher-32. So every dataset mpitrain
// writes carries a CRC-32C of its whole content in its (checksummed) object header, verified on
// every full read; and the chunk index is checked against the dataset's chunk grid first, to name
// what is wrong. Datasets without the digest (other writers, older files) are read as before.
#pragma once
#include <ATen/core/Tensor.h>
#include <H5Cpp.h>

#include <string>

namespace hdf5_io::detail {

constexpr const char* kDigestAttribute = "crc32c";

/// Stores the digest of `t` (contiguous, on the CPU) as an attribute of `ds`.
void write_digest(H5::DataSet& ds, const at::Tensor& t);
/// If `ds` carries a digest: CheckpointError naming `full` unless its chunk index lists exactly the
/// chunks of its grid, each with every filter applied.
void check_chunk_index(const H5::DataSet& ds, const std::string& full);
/// If `ds` carries a digest: CheckpointError naming `full` unless `t` (the whole dataset) matches it.
void check_digest(const H5::DataSet& ds, const at::Tensor& t, const std::string& full);

}  // namespace hdf5_io::detail
