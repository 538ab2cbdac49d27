// load_hdf5_shard: each rank's rows (padding wraps around like DistributedSampler), datasets
// written without mpitrain's dtype attribute (as h5py writes them), and errors naming the file.
#include <ATen/ATen.h>
#include <H5Cpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "mpitrain/data/hdf5_dataset.hpp"
#include "mpitrain/errors.hpp"

namespace mpitrain {
namespace {

struct TempH5 {
  std::string path = (std::filesystem::temp_directory_path() / ("h5ds-" + std::to_string(::getpid()) + ".h5")).string();
  ~TempH5() { std::filesystem::remove(path); }
};

// Plain HDF5, no attributes: X uint8 [n, 2, 3] with X[i] = i, y int64 [n] with y[i] = 100 + i.
void write_plain(const std::string& path, int64_t n, int64_t n_y) {
  H5::H5File f(path, H5F_ACC_TRUNC);
  std::vector<uint8_t> x(static_cast<size_t>(n * 6));
  for (int64_t i = 0; i < n * 6; ++i) x[size_t(i)] = uint8_t(i / 6);
  std::vector<int64_t> y(static_cast<size_t>(n_y));
  for (int64_t i = 0; i < n_y; ++i) y[size_t(i)] = 100 + i;
  hsize_t xd[3] = {hsize_t(n), 2, 3}, yd[1] = {hsize_t(n_y)};
  f.createDataSet("X", H5::PredType::NATIVE_UINT8, H5::DataSpace(3, xd)).write(x.data(), H5::PredType::NATIVE_UINT8);
  f.createDataSet("y", H5::PredType::NATIVE_INT64, H5::DataSpace(1, yd)).write(y.data(), H5::PredType::NATIVE_INT64);
}

TEST(Hdf5Dataset, RanksReadTheirRowsAndPadByWrappingAround) {
  TempH5 f;
  write_plain(f.path, 10, 10);
  const int world = 3;  // ceil(10 / 3) = 4 rows each: 0-3, 4-7, 8 9 0 1
  std::vector<int64_t> seen;
  for (int r = 0; r < world; ++r) {
    auto ds = load_hdf5_shard(f.path, r, world);
    ASSERT_EQ(ds->size(), 4);
    EXPECT_TRUE(ds->rank_local());
    EXPECT_EQ(ds->input().scalar_type(), at::kByte);
    EXPECT_EQ(ds->input().sizes(), (std::vector<int64_t>{4, 2, 3}));
    for (int64_t i = 0; i < 4; ++i) {
      const int64_t row = (r * 4 + i) % 10;
      EXPECT_EQ(ds->input()[i][1][2].item<int64_t>(), row) << "rank " << r << " row " << i;
      EXPECT_EQ(ds->target()[i].item<int64_t>(), 100 + row);
      seen.push_back(row);
    }
  }
  std::sort(seen.begin(), seen.end());
  seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
  EXPECT_EQ(seen.size(), 10u) << "every row is read by some rank";
}

TEST(Hdf5Dataset, OneRankReadsEverything) {
  TempH5 f;
  write_plain(f.path, 7, 7);
  auto ds = load_hdf5_shard(f.path, 0, 1);
  EXPECT_EQ(ds->size(), 7);
  EXPECT_EQ(ds->target()[6].item<int64_t>(), 106);
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "<no ConfigError>";
}

TEST(Hdf5Dataset, BadFilesNameTheProblem) {
  TempH5 f;
  write_plain(f.path, 5, 4);
  EXPECT_NE(error_of([&] { load_hdf5_shard(f.path, 0, 2); }).find("same first dimension (5 vs 4)"), std::string::npos);
  EXPECT_NE(error_of([&] { load_hdf5_shard(f.path, 0, 2, "images"); }).find("no dataset 'images'"), std::string::npos);
  EXPECT_NE(error_of([&] { load_hdf5_shard("/nonexistent/d.h5", 0, 2); }).find("/nonexistent/d.h5 not found"), std::string::npos);
  EXPECT_NE(error_of([&] { load_hdf5_shard("/etc/hostname", 0, 2); }).find("not an HDF5 file"), std::string::npos);
  EXPECT_THROW(load_hdf5_shard(f.path, 2, 2), ArgumentError);
}

}  // namespace
}  // namespace mpitrain
