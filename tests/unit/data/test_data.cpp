// Data layer: Fashion-MNIST IDX reading (and its errors), DistributedSampler parity with
// PyTorch, and the prefetching loader.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "mpitrain/data/data_loader.hpp"
#include "mpitrain/data/fashion_mnist.hpp"
#include "mpitrain/data/synthetic.hpp"
#include "mpitrain/errors.hpp"
#include "../../support/temp_dir.hpp"

namespace mpitrain {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "<no exception>";
}

using ::mpitrain::test::TempDir;

void write_gz(const std::filesystem::path& p, const std::vector<unsigned char>& bytes) {
  gzFile f = gzopen(p.c_str(), "wb");
  gzwrite(f, bytes.data(), unsigned(bytes.size()));
  gzclose(f);
}

std::vector<unsigned char> idx_header(unsigned char type_dims, std::vector<uint32_t> dims) {
  std::vector<unsigned char> b = {0, 0, 0x08, type_dims};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back((unsigned char)(d >> s));
  return b;
}

TEST(FashionMnist, RealDatasetShapesLabelsAndNormalisation) {
  if (!std::filesystem::exists(std::string(kFashionMnistDir) + "/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "dataset-fashion-mnist is not installed (scripts/setup installs it)";
  auto train = load_fashion_mnist(kFashionMnistDir, true);
  auto test = load_fashion_mnist(kFashionMnistDir, false);
  EXPECT_EQ(train->size(), 60000);
  EXPECT_EQ(test->size(), 10000);
  EXPECT_EQ(train->input().sizes(), (std::vector<int64_t>{60000, 1, 28, 28}));
  EXPECT_EQ(train->target().scalar_type(), at::kLong);
  at::Tensor counts = at::bincount(train->target());
  ASSERT_EQ(counts.numel(), 10);
  EXPECT_TRUE(counts.eq(6000).all().item<bool>()) << "Fashion-MNIST has 6,000 training images per class";
  EXPECT_NEAR(train->input().mean().item<double>(), 0.0, 0.01);
  EXPECT_NEAR(train->input().std().item<double>(), 1.0, 0.02);
}

TEST(FashionMnist, ReadsAGeneratedIdxFile) {
  TempDir d;
  auto bytes = idx_header(3, {2, 2, 3});
  for (int i = 0; i < 12; ++i) bytes.push_back((unsigned char)(i * 10));
  write_gz(d.path / "x.gz", bytes);
  at::Tensor t = read_idx((d.path / "x.gz").string());
  ASSERT_EQ(t.sizes(), (std::vector<int64_t>{2, 2, 3}));
  EXPECT_EQ(t[1][1][2].item<uint8_t>(), 110);
  std::ofstream(d.path / "plain", std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), long(bytes.size()));
  EXPECT_TRUE(read_idx((d.path / "plain").string()).equal(t)) << "uncompressed IDX reads the same";
}

TEST(FashionMnist, BadFilesNameTheFileAndTheProblem) {
  TempDir d;
  EXPECT_NE(error_of([&] { read_idx((d.path / "missing.gz").string()); }).find("IDX file not found: "), std::string::npos);
  auto trunc = idx_header(3, {10, 28, 28});
  trunc.resize(trunc.size() + 100);
  write_gz(d.path / "trunc.gz", trunc);
  std::string m = error_of([&] { read_idx((d.path / "trunc.gz").string()); });
  EXPECT_NE(m.find("trunc.gz: truncated data (100 of 7840 bytes"), std::string::npos) << m;
  write_gz(d.path / "magic.gz", {0x1f, 0x00, 0x08, 0x03, 0, 0, 0, 1});
  m = error_of([&] { read_idx((d.path / "magic.gz").string()); });
  EXPECT_NE(m.find("magic.gz: bad magic"), std::string::npos) << m;
  m = error_of([&] { load_fashion_mnist(d.path.string(), true); });
  EXPECT_NE(m.find("train-images-idx3-ubyte.gz not found"), std::string::npos) << m;
}

TEST(DistributedSampler, SameIndicesAsPyTorch) {
  if (!std::filesystem::exists("/usr/bin/python3")) GTEST_SKIP() << "/usr/bin/python3 (with torch) not installed";
  std::vector<nlohmann::json> configs;
  for (int rank = 0; rank < 3; ++rank)
    for (bool drop : {false, true}) {
      configs.push_back({10, 3, rank, true, 5, 2, drop});
      configs.push_back({10, 3, rank, false, 0, 0, drop});
      configs.push_back({2, 3, rank, true, 1, 0, drop});  // fewer examples than ranks
      configs.push_back({1000, 3, rank, true, 42, 7, drop});
    }
  TempDir d;
  {
    std::ofstream in(d.path / "in.jsonl");
    for (auto& c : configs) in << c.dump() << "\n";
  }
  const std::string script = std::string(MPITRAIN_TEST_SOURCE_DIR) + "/unit/data/sampler_reference.py";
  const std::string cmd = "/usr/bin/python3 " + script + " < " + (d.path / "in.jsonl").string() + " > " +
                          (d.path / "out.jsonl").string();
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream out(d.path / "out.jsonl");
  std::string line;
  for (auto& c : configs) {
    ASSERT_TRUE(std::getline(out, line)) << "no PyTorch answer for " << c.dump();
    DistributedSampler s(c[0], c[1], c[2], c[3], c[4].get<uint64_t>(), c[6]);
    s.set_epoch(c[5]);
    EXPECT_EQ(nlohmann::json(s.indices()), nlohmann::json::parse(line)) << "config " << c.dump();
    EXPECT_EQ(s.num_samples(), int64_t(nlohmann::json::parse(line).size())) << c.dump();
  }
}

TEST(DistributedSampler, RanksPartitionAnEpochAndEpochsDiffer) {
  std::multiset<int64_t> seen;
  std::vector<int64_t> first_epoch0;
  for (int r = 0; r < 4; ++r) {
    DistributedSampler s(103, 4, r, true, 9);
    auto idx = s.indices();
    if (r == 0) first_epoch0 = idx;
    seen.insert(idx.begin(), idx.end());
    s.set_epoch(1);
    if (r == 0) EXPECT_NE(s.indices(), first_epoch0) << "a new epoch must reshuffle";
  }
  EXPECT_EQ(seen.size(), 104u);  // 103 padded to 26 per rank
  for (int64_t i = 0; i < 103; ++i) EXPECT_GE(seen.count(i), 1u) << i;
  EXPECT_THROW(DistributedSampler(10, 2, 2), ConfigError);
}

std::shared_ptr<TensorDataset> counting_dataset(int64_t n) {
  at::Tensor x = at::arange(n, at::kFloat).unsqueeze(1);
  return std::make_shared<TensorDataset>(x, at::arange(n, at::kLong), "counting");
}

TEST(DataLoader, BatchesFollowTheSamplerWithAndWithoutPrefetch) {
  auto ds = counting_dataset(23);
  for (int prefetch : {0, 1, 3}) {
    DistributedSampler sampler(23, 2, 1, true, 3);
    DataLoader loader(ds, sampler, 5, false, prefetch);
    loader.set_epoch(4);
    sampler.set_epoch(4);
    auto want = sampler.indices();  // 12 indices -> batches of 5, 5, 2
    ASSERT_EQ(loader.batches_per_epoch(), 3);
    std::vector<int64_t> got;
    std::vector<int64_t> sizes;
    auto epoch = loader.epoch();
    while (auto b = epoch->next()) {
      sizes.push_back(b->size());
      for (int64_t i = 0; i < b->size(); ++i) got.push_back(b->target[i].item<int64_t>());
      EXPECT_TRUE(b->input.squeeze(1).to(at::kLong).equal(b->target));
    }
    EXPECT_EQ(got, want) << "prefetch " << prefetch;
    EXPECT_EQ(sizes, (std::vector<int64_t>{5, 5, 2}));
  }
}

TEST(DataLoader, DropLastAndResumeInsideAnEpoch) {
  auto ds = counting_dataset(23);
  DataLoader loader(ds, DistributedSampler(23, 1, 0, false), 5, /*drop_last=*/true);
  EXPECT_EQ(loader.batches_per_epoch(), 4);
  auto epoch = loader.epoch(/*start=*/2);
  auto b = epoch->next();
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->target[0].item<int64_t>(), 10) << "batch 2 starts at example 10";
  ASSERT_TRUE(epoch->next().has_value());
  EXPECT_FALSE(epoch->next().has_value());
  EXPECT_NE(error_of([&] { DataLoader(ds, DistributedSampler(23, 1, 0), 0); }).find("batch size must be at least 1 (got 0)"),
            std::string::npos);
  EXPECT_THROW(loader.epoch(5), ConfigError);
}

TEST(Synthetic, DeterministicAndLearnable) {
  auto a = make_synthetic_classification(500, {8}, 4, 11);
  auto b = make_synthetic_classification(500, {8}, 4, 11);
  EXPECT_TRUE(a->input().equal(b->input()));
  EXPECT_TRUE(a->target().equal(b->target()));
  EXPECT_GE(a->target().min().item<int64_t>(), 0);
  EXPECT_LT(a->target().max().item<int64_t>(), 4);
  EXPECT_GT(at::bincount(a->target()).min().item<int64_t>(), 20) << "every class is present";
}

}  // namespace
}  // namespace mpitrain
