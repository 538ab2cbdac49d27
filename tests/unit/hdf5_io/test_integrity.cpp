// Chunk-index integrity (issue 16, item 3): the 1.8 format's chunk index (a v1 B-tree) has no
// checksum of its own, so every dataset carries a CRC-32C of its content. Every one-byte change of
// the index must either fail the read (CheckpointError) or leave the content read back unchanged.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cstring>
#include <fstream>

#include "../../support/temp_dir.hpp"
#include "hdf5_io/checkpoint_file.hpp"
#include "hdf5_io/crc32c.hpp"
#include "hdf5_test_support.hpp"

namespace hdf5_io::test {
namespace {

using mpitrain::test::TempDir;

// [600, 1024] float32 = 2.4 MB: three chunks of 200 rows, one B-tree node with three entries.
at::Tensor sample() { return at::arange(600 * 1024, at::kFloat).reshape({600, 1024}); }

void write_sample(const std::string& path) {
  H5::H5File f = create_file(path);
  H5::Group root = f.openGroup("/");
  write_tensor(root, "w", sample());
}

// Offsets of the v1 B-tree nodes that index raw-data chunks ("TREE", node type 1).
std::vector<size_t> chunk_index_nodes(const std::string& bytes) {
  std::vector<size_t> out;
  for (size_t at = bytes.find("TREE"); at != std::string::npos; at = bytes.find("TREE", at + 1))
    if (at + 8 < bytes.size() && bytes[at + 4] == 1) out.push_back(at);
  return out;
}

// The bytes of a node that describe chunks: "entries used", then each entry's key (chunk size,
// filter mask, one 8-byte offset per dimension + 1) and child address, and the final key.
std::vector<size_t> index_bytes(const std::string& bytes, size_t node, size_t rank) {
  uint16_t used = 0;
  std::memcpy(&used, bytes.data() + node + 6, 2);
  const size_t key = 8 + 8 * (rank + 1), start = node + 24, end = start + used * (key + 8) + key;
  std::vector<size_t> out = {node + 6, node + 7};
  for (size_t b = start; b < end && b < bytes.size(); ++b) out.push_back(b);
  return out;
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), std::streamsize(bytes.size()));
}

TEST(Crc32c, StandardCheckValue) {
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c("", 0), 0u);
  std::string odd(1001, 'x');  // not a multiple of 8: the byte tail
  EXPECT_NE(crc32c(odd.data(), odd.size()), crc32c(odd.data(), odd.size() - 1));
}

TEST(Integrity, EveryByteOfTheChunkIndexFailsTheReadOrChangesNothing) {
  TempDir dir;
  const std::string path = dir.file("w.h5"), damaged = dir.file("damaged.h5");
  write_sample(path);
  const std::string original = slurp(path);
  const auto nodes = chunk_index_nodes(original);
  ASSERT_EQ(nodes.size(), 1u) << "one chunk-index node expected";
  const at::Tensor want = sample();
  int caught = 0, unchanged = 0, flips = 0;
  for (size_t at : index_bytes(original, nodes[0], 2))
    for (char mask : {char(0x01), char(0x80)}) {
      std::string bytes = original;
      bytes[at] = char(bytes[at] ^ mask);
      write_bytes(damaged, bytes);
      ++flips;
      at::Tensor got;
      const std::string err = error_of([&] {
        H5::H5File f = open_file(damaged);
        got = read_tensor(f.openGroup("/"), "w");
      });
      if (err != "<no CheckpointError>") {
        EXPECT_EQ(err.find("<"), std::string::npos) << "byte " << at << ": not a CheckpointError: " << err;
        ++caught;
      } else if (got.equal(want)) {
        ++unchanged;
      } else {
        ADD_FAILURE() << "byte " << at << " ^ " << int(uint8_t(mask)) << " changed the content and was not caught";
      }
    }
  std::printf("chunk index: %d one-byte changes, %d caught, %d left the content unchanged\n", flips, caught, unchanged);
  EXPECT_GT(caught, flips / 2);
}

// Without the digest, the same damage passes silently: what the digest is for (and the proof that
// the test above can fail).
TEST(Integrity, WithoutTheDigestAReKeyedChunkReadsBackAsZeros) {
  TempDir dir;
  const std::string path = dir.file("w.h5");
  write_sample(path);
  {
    H5::H5File f(path, H5F_ACC_RDWR);
    H5::DataSet ds = f.openDataSet("/w");
    ds.removeAttr("crc32c");
  }
  std::string bytes = slurp(path);
  const auto nodes = chunk_index_nodes(bytes);
  ASSERT_FALSE(nodes.empty());
  const size_t first_key_row_offset = nodes[0] + 24 + 8;  // entry 0's key: size, mask, then offset[0]
  bytes[first_key_row_offset + 1] = char(bytes[first_key_row_offset + 1] ^ 0x01);  // row 0 -> row 256
  write_bytes(path, bytes);
  H5::H5File f = open_file(path);
  at::Tensor got;
  const std::string err = error_of([&] { got = read_tensor(f.openGroup("/"), "w"); });
  ASSERT_EQ(err, "<no CheckpointError>") << "HDF5 alone does not notice";
  EXPECT_FALSE(got.equal(sample())) << "the first chunk's rows read back as fill values";
}

TEST(Integrity, AFlippedDataByteWithTheFilterMaskSetIsCaught) {
  TempDir dir;
  const std::string path = dir.file("w.h5");
  write_sample(path);
  std::string bytes = slurp(path);
  const auto nodes = chunk_index_nodes(bytes);
  ASSERT_FALSE(nodes.empty());
  bytes[nodes[0] + 24 + 4] = char(bytes[nodes[0] + 24 + 4] | 0x01);  // entry 0: skip filter 0 (Fletcher-32)
  write_bytes(path, bytes);
  const std::string err = error_of([&] {
    H5::H5File f = open_file(path);
    read_tensor(f.openGroup("/"), "w");
  });
  EXPECT_TRUE(contains(err, "dataset /w is corrupt")) << err;
}

}  // namespace
}  // namespace hdf5_io::test
