#include "integrity.hpp"

#include <cstdio>
#include <vector>

#include "error_stack.hpp"
#include "hdf5_io/checkpoint_file.hpp"
#include "hdf5_io/crc32c.hpp"
#include "hdf5_io/tensor_io.hpp"

namespace hdf5_io::detail {

namespace {
std::string dims_text(const std::vector<hsize_t>& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + "]";
}
std::string hex(uint32_t v) {
  char b[16];
  std::snprintf(b, sizeof b, "%08x", v);
  return b;
}
}  // namespace

void write_digest(H5::DataSet& ds, const at::Tensor& t) {
  set_int_attribute(ds, kDigestAttribute, int64_t(crc32c(t.data_ptr(), size_t(t.nbytes()))));
}

void check_chunk_index(const H5::DataSet& ds, const std::string& full) {
  if (!has_attribute(ds, kDigestAttribute)) return;
  const hid_t dcpl = H5Dget_create_plist(ds.getId()), space = H5Dget_space(ds.getId());
  const int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
  std::vector<hsize_t> dims(size_t(std::max(rank, 0))), chunk(dims.size()), offset(dims.size());
  std::string problem;
  if (dcpl >= 0 && rank > 0 && H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_chunk(dcpl, rank, chunk.data()) == rank) {
    H5Sget_simple_extent_dims(space, dims.data(), nullptr);
    const hsize_t expected = dims[0] == 0 ? 0 : (dims[0] + chunk[0] - 1) / chunk[0];  // chunks split rows only
    hsize_t listed = 0;
    if (H5Dget_num_chunks(ds.getId(), space, &listed) < 0) problem = hdf5_cause("its chunk index cannot be read");
    else if (listed != expected)
      problem = "its chunk index lists " + std::to_string(listed) + " chunks, its shape needs " + std::to_string(expected);
    for (hsize_t i = 0; problem.empty() && i < listed; ++i) {
      unsigned mask = 0;
      haddr_t addr = HADDR_UNDEF;
      hsize_t size = 0;
      std::vector<hsize_t> want(dims.size(), 0);
      want[0] = i * chunk[0];
      if (H5Dget_chunk_info(ds.getId(), space, i, offset.data(), &mask, &addr, &size) < 0 || addr == HADDR_UNDEF)
        problem = hdf5_cause("chunk " + std::to_string(i) + " of its index cannot be read");
      else if (offset != want)
        problem = "chunk " + std::to_string(i) + " of its index is keyed at offset " + dims_text(offset) +
                  " where its grid has " + dims_text(want);
      else if (mask != 0)
        problem = "chunk " + std::to_string(i) + " of its index skips filters (mask " + std::to_string(mask) +
                  "): its checksum would not be checked";
    }
  }
  if (space >= 0) H5Sclose(space);
  if (dcpl >= 0) H5Pclose(dcpl);
  if (!problem.empty()) throw CheckpointError("dataset " + full + " is corrupt: " + problem);
}

void check_digest(const H5::DataSet& ds, const at::Tensor& t, const std::string& full) {
  if (!has_attribute(ds, kDigestAttribute)) return;
  const uint32_t stored = uint32_t(get_int_attribute(ds, kDigestAttribute));
  const uint32_t computed = crc32c(t.data_ptr(), size_t(t.nbytes()));
  if (stored != computed)
    throw CheckpointError("dataset " + full + " is corrupt: its content does not match its CRC-32C (stored " +
                          hex(stored) + ", read " + hex(computed) + "): a damaged chunk index or data");
}

}  // namespace hdf5_io::detail
