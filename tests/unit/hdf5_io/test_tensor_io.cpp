// hdf5_io: every dtype round-trips bit-exactly, attributes, per-rank hyperslabs, and corruption
// (flipped bytes, truncation, not HDF5) raises CheckpointError naming the dataset or file.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <sys/mman.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "hdf5_io/tensor_io.hpp"
#include "hdf5_test_support.hpp"

namespace hdf5_io {
namespace {

struct TempFile {
  std::string path = (std::filesystem::temp_directory_path() / ("hdf5io-" + std::to_string(::getpid()) + "-" +
                                                                 std::to_string(counter++) + ".h5")).string();
  ~TempFile() { std::filesystem::remove(path); }
  static inline int counter = 0;
};

using test::error_of;

TEST(TensorIo, EveryDtypeRoundTripsBitExactly) {
  TempFile f;
  std::vector<std::pair<std::string, at::Tensor>> tensors = {
      {"f32", at::randn({3, 5})},
      {"f64", at::randn({7}, at::kDouble)},
      {"bf16", at::randn({4, 4}).to(at::kBFloat16)},
      {"f16", at::randn({2, 3, 4}).to(at::kHalf)},
      {"i32", at::randint(-1000, 1000, {9}, at::kInt)},
      {"i64", at::randint(-1000000, 1000000, {2, 2}, at::kLong)},
      {"bool", at::randn({6}).gt(0)},
      {"scalar", at::scalar_tensor(3.25)},
      {"empty", at::empty({0, 4})},
  };
  {
    H5::H5File file = create_file(f.path);
    H5::Group g = require_group(file, "/model/layer1");
    for (auto& [name, t] : tensors) write_tensor(g, name, t);
  }
  H5::H5File file = open_file(f.path);
  H5::Group g = file.openGroup("/model/layer1");
  for (auto& [name, t] : tensors) {
    at::Tensor r = read_tensor(g, name);
    EXPECT_EQ(r.scalar_type(), t.scalar_type()) << name;
    EXPECT_EQ(r.sizes(), t.sizes()) << name;
    EXPECT_TRUE(r.equal(t)) << name;
  }
}

TEST(TensorIo, AttributesAndHyperslabRows) {
  TempFile f;
  {
    H5::H5File file = create_file(f.path);
    H5::Group root = file.openGroup("/");
    set_attribute(root, "format", "mpitrain-checkpoint");
    set_attribute(root, "config", R"({"lr": 0.1, "model": "mlp"})");
    write_tensor(root, "X", at::arange(100 * 3, at::kFloat).reshape({100, 3}));
  }
  H5::H5File file = open_file(f.path);
  H5::Group root = file.openGroup("/");
  EXPECT_EQ(get_attribute(root, "format"), "mpitrain-checkpoint");
  EXPECT_EQ(get_attribute(root, "config"), R"({"lr": 0.1, "model": "mlp"})");
  EXPECT_FALSE(has_attribute(root, "nope"));
  at::Tensor rows = read_rows(root, "X", 40, 10);  // what rank 2 of 5 would read from 50 rows
  ASSERT_EQ(rows.sizes(), (std::vector<int64_t>{10, 3}));
  EXPECT_EQ(rows[0][0].item<float>(), 120.f);
  EXPECT_EQ(dataset_shape(root, "X"), (std::vector<int64_t>{100, 3}));
  EXPECT_NE(error_of([&] { read_rows(root, "X", 95, 10); }).find("/X: rows [95, 105) outside its 100 rows"), std::string::npos);
  EXPECT_NE(error_of([&] { read_tensor(root, "Y"); }).find("dataset /Y is missing"), std::string::npos);
}

TEST(TensorIo, FlippedBytesAreCaughtByTheChecksumAndNamed) {
  TempFile f;
  at::Tensor w = at::arange(50000, at::kFloat).add_(1234567.0f);
  {
    H5::H5File file = create_file(f.path);
    H5::Group g = require_group(file, "/model");
    write_tensor(g, "weight", w);
  }
  // Find the data (element 1000's bytes) in the file and flip one byte there.
  std::string bytes;
  {
    std::ifstream in(f.path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const float probe = w[1000].item<float>();
  const size_t pos = bytes.find(std::string(reinterpret_cast<const char*>(&probe), 4));
  ASSERT_NE(pos, std::string::npos);
  bytes[pos + 1] ^= 0x40;
  std::ofstream(f.path, std::ios::binary | std::ios::trunc).write(bytes.data(), long(bytes.size()));
  H5::H5File file = open_file(f.path);
  H5::Group g = file.openGroup("/model");
  const std::string m = error_of([&] { read_tensor(g, "weight"); });
  EXPECT_NE(m.find("cannot read dataset /model/weight (corrupt or truncated?)"), std::string::npos) << m;
}

TEST(TensorIo, TruncatedAndForeignFilesAreNamed) {
  TempFile f, junk;
  {
    H5::H5File file = create_file(f.path);
    H5::Group g = file.openGroup("/");
    write_tensor(g, "big", at::randn({200000}));
  }
  std::filesystem::resize_file(f.path, std::filesystem::file_size(f.path) / 2);
  std::string m;
  try {
    H5::H5File file = open_file(f.path);
    H5::Group g = file.openGroup("/");
    read_tensor(g, "big");
    m = "<no error>";
  } catch (const CheckpointError& e) {
    m = e.what();
  } catch (const H5::Exception& e) {
    m = "raw H5 exception: " + e.getDetailMsg();
  }
  EXPECT_TRUE(m.find(f.path) != std::string::npos || m.find("/big") != std::string::npos) << m;
  std::ofstream(junk.path) << "not hdf5 at all";
  EXPECT_NE(error_of([&] { open_file(junk.path); }).find(junk.path + " is not an HDF5 file"), std::string::npos);
  EXPECT_NE(error_of([&] { open_file("/nonexistent/x.h5"); }).find("/nonexistent/x.h5"), std::string::npos);
}

TEST(TensorIo, ReadableFromH5py) {
  if (!std::filesystem::exists("/usr/bin/python3")) GTEST_SKIP() << "/usr/bin/python3 with h5py not installed";
  TempFile f;
  {
    H5::H5File file = create_file(f.path);
    H5::Group g = require_group(file, "/model");
    write_tensor(g, "w", at::arange(6, at::kFloat).reshape({2, 3}));
    write_tensor(g, "h", at::ones({3}, at::kBFloat16));
  }
  const std::string cmd = "/usr/bin/python3 -c \"import h5py,sys; f=h5py.File('" + f.path +
                          "','r'); w=f['model/w']; assert w.shape==(2,3) and w[1,2]==5.0 and w.attrs['dtype']==b'float32';"
                          " h=f['model/h']; assert h.attrs['dtype']==b'bfloat16' and h[0]==0x3f80; print('h5py ok')\"";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

}  // namespace
}  // namespace hdf5_io

namespace hdf5_io {
namespace {

// write_tensor stages and checksums chunks itself (chunk_writer.cpp); HDF5 verifies every chunk's
// Fletcher-32 on read, so a wrong checksum, a misplaced chunk or bad edge padding fails here.
TEST(TensorIo, ChunksWrittenDirectlyPassHdf5sOwnChecksum) {
  TempFile f;
  std::vector<std::pair<std::string, at::Tensor>> tensors = {
      {"many_chunks", at::randn({3000, 300})},             // 1200-byte rows: 4 equal chunks of 750 rows
      {"uneven_chunks", at::randn({3001, 300})},           // 4 chunks of 751 rows, the last one padded
      {"one_row_per_chunk", at::randn({5, 300000})},        // rows over 1 MiB
      {"odd_bytes", at::randn({7}).gt(0)},                 // a 7-byte chunk: Fletcher-32's odd tail
      {"bytes_over_a_mebibyte", at::randint(0, 255, {(1 << 20) + 3}, at::kByte)},
      {"large_int64", at::randint(-1000000, 1000000, {200000, 3}, at::kLong)},
  };
  {
    H5::H5File file = create_file(f.path);
    H5::Group g = require_group(file, "/t");
    for (auto& [name, t] : tensors) write_tensor(g, name, t);
  }
  H5::H5File file = open_file(f.path);
  H5::Group g = file.openGroup("/t");
  for (auto& [name, t] : tensors) {
    at::Tensor back = read_tensor(g, name);
    EXPECT_TRUE(back.equal(t)) << name;
    EXPECT_TRUE(read_rows(g, name, 1, 2).equal(t.narrow(0, 1, 2))) << name;
    // read_tensor reads chunks itself (chunk_reader.cpp); rows go through HDF5's own filter.
    EXPECT_TRUE(read_rows(g, name, 0, t.size(0)).equal(t)) << name;
  }
}

// Whole chunks are written straight from the tensor's memory with the checksum patched into the
// file afterwards: the source must never be written to, even for a moment. A read-only mapping
// makes any write a crash, and the checksums must still verify.
TEST(TensorIo, ChunksWrittenInPlaceNeverTouchTheSourceMemory) {
  TempFile f;
  const size_t rows = 2500, cols = 500, bytes = rows * cols * sizeof(float);  // 2000-byte rows: 5 chunks
  void* mem = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  at::Tensor expected = at::randn({int64_t(rows), int64_t(cols)});
  std::memcpy(mem, expected.data_ptr(), bytes);
  ASSERT_EQ(::mprotect(mem, bytes, PROT_READ), 0);
  at::Tensor readonly = at::from_blob(mem, {int64_t(rows), int64_t(cols)});
  {
    H5::H5File file = create_file(f.path);
    H5::Group g = require_group(file, "/t");
    write_tensor(g, "w", readonly);
  }
  EXPECT_TRUE(read_tensor(open_file(f.path).openGroup("/t"), "w").equal(expected));
  ::munmap(mem, bytes);
}

// A file on another driver (here in memory, then written out) has no descriptor to patch
// checksums through: every chunk is staged instead, and the result verifies the same.
TEST(TensorIo, ChunksOnANonPosixDriverAreStaged) {
  TempFile f;
  at::Tensor t = at::randn({3000, 300});
  {
    H5::FileAccPropList fapl;
    fapl.setCore(1 << 20, true);
    H5::H5File file(f.path, H5F_ACC_TRUNC, H5::FileCreatPropList::DEFAULT, fapl);
    H5::Group g = require_group(file, "/t");
    write_tensor(g, "w", t);
  }
  EXPECT_TRUE(read_tensor(open_file(f.path).openGroup("/t"), "w").equal(t));
}

using test::flip_byte_at;

// read_tensor reads checksummed chunks raw and verifies them itself: a flipped byte in a chunk
// read in place, in the last chunk's data or in its zero padding, with several chunks (helper
// thread) or few (inline), fails naming the dataset and the chunk.
TEST(TensorIo, ChunksReadDirectlyCatchFlippedBytes) {
  struct Case {
    int64_t rows, chunk;
    hsize_t byte_in_chunk;
  };
  const hsize_t chunk_bytes = 751 * 300 * 4;  // 3001 rows: 4 chunks of 751, the last 3 rows padding
  for (const Case& c : {Case{3001, 1, 1000}, Case{3001, 3, 1000}, Case{3001, 3, chunk_bytes - 1}, Case{1500, 1, 77}}) {
    const at::Tensor t = at::randn({c.rows, 300});
    TempFile f;
    {
      H5::H5File file = create_file(f.path);
      H5::Group g = require_group(file, "/t");
      write_tensor(g, "w", t);
    }
    hsize_t at_byte = 0;
    {
      H5::H5File file = open_file(f.path);
      at_byte = chunk_file_offset(file.openDataSet("/t/w"), hsize_t(c.chunk)) + c.byte_in_chunk;
    }
    flip_byte_at(f.path, at_byte);
    const std::string m = error_of([&] { read_tensor(open_file(f.path).openGroup("/t"), "w"); });
    EXPECT_NE(m.find("cannot read dataset /t/w (corrupt or truncated?): chunk " + std::to_string(c.chunk) +
                     ": data error detected by Fletcher32 checksum"),
              std::string::npos)
        << c.rows << " rows, chunk " << c.chunk << " byte " << c.byte_in_chunk << ": " << m;
  }
}

// Datasets other writers chunked differently: h5py's uneven chunks (whose 4-byte checksum slots
// do not fit after every chunk), chunks never written (fill values), several filters (HDF5's
// pipeline), chunks across dimension 1; and a flipped byte in one of h5py's small chunks.
TEST(TensorIo, ChunksOfOtherWritersReadBack) {
  if (!std::filesystem::exists("/usr/bin/python3")) GTEST_SKIP() << "/usr/bin/python3 with h5py not installed";
  TempFile f;
  const std::string cmd = "/usr/bin/python3 -c \"import h5py, numpy as np; f=h5py.File('" + f.path + "','w'); "
                          "f.create_dataset('u8', data=np.arange(9, dtype=np.uint8), chunks=(4,), fletcher32=True); "
                          "f.create_dataset('tiny', data=np.arange(7, dtype=np.uint8), chunks=(2,), fletcher32=True); "
                          "p=f.create_dataset('part', shape=(10,), dtype='f4', chunks=(2,), fletcher32=True); p[0:4]=[1,2,3,4]; "
                          "f.create_dataset('gz', data=np.arange(5000, dtype=np.float32).reshape(50, 100), chunks=(7, 100), "
                          "fletcher32=True, compression='gzip'); "
                          "f.create_dataset('cols', data=np.arange(5000, dtype=np.float64).reshape(50, 100), chunks=(10, 30), "
                          "fletcher32=True)\"";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  {
    H5::Group root = open_file(f.path).openGroup("/");
    EXPECT_TRUE(read_tensor(root, "u8").equal(at::arange(9, at::kByte)));
    EXPECT_TRUE(read_tensor(root, "tiny").equal(at::arange(7, at::kByte)));
    EXPECT_TRUE(read_tensor(root, "part").equal(at::cat({at::arange(1, 5, at::kFloat), at::zeros({6})})));
    EXPECT_TRUE(read_tensor(root, "gz").equal(at::arange(5000, at::kFloat).reshape({50, 100})));
    EXPECT_TRUE(read_tensor(root, "cols").equal(at::arange(5000, at::kDouble).reshape({50, 100})));
  }
  hsize_t at_byte = 0;
  {
    H5::H5File file = open_file(f.path);
    at_byte = chunk_file_offset(file.openDataSet("/tiny"), 2);  // chunk 2 holds 4 and 5, in a buffer of its own
  }
  flip_byte_at(f.path, at_byte);
  const std::string m = error_of([&] { read_tensor(open_file(f.path).openGroup("/"), "tiny"); });
  EXPECT_NE(m.find("/tiny (corrupt or truncated?): chunk 2: data error detected by Fletcher32 checksum"), std::string::npos)
      << m;
}

}  // namespace
}  // namespace hdf5_io
