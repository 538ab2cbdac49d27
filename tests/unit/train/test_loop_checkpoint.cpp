// loop::Checkpoint and the run directory's CheckpointManager (no MPI): a checkpoint's file round
// trip (names with '/', NaN metrics, a directory's files, modules and optimizers, strict loading),
// and retention: which files stay, best_checkpoints' order, the manifest read back by a relaunch.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <set>

#include "loop/checkpoint_manager.hpp"
#include "mpitrain/errors.hpp"
#include "mpitrain/train/loop/checkpoint.hpp"
#include "../../support/temp_dir.hpp"

namespace mpitrain::loop {
namespace {

namespace fs = std::filesystem;
using test::TempDir;
using Metrics = std::map<std::string, double>;

struct NetImpl : torch::nn::Module {
  NetImpl() {
    fc = register_module("fc", torch::nn::Linear(3, 2));
    bn = register_module("bn", torch::nn::BatchNorm1d(2));
  }
  torch::Tensor forward(const torch::Tensor& x) { return bn->forward(fc->forward(x)); }
  torch::nn::Linear fc{nullptr};
  torch::nn::BatchNorm1d bn{nullptr};
};
TORCH_MODULE(Net);

template <class E>
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(LoopCheckpoint, FileRoundTripKeepsTensorsStateMetricsAndFiles) {
  TempDir dir;
  Checkpoint c;
  c.tensors["model/layer.0/weight"] = torch::arange(6, torch::kFloat32).reshape({2, 3});
  c.tensors["step"] = torch::tensor({int64_t(7)});
  c.tensors["half"] = torch::tensor({1.5, -2.0}, torch::kFloat64);
  c.state = {{"epoch", 3}, {"note", "x"}};
  c.metrics = {{"loss", 0.25}, {"nan", std::numeric_limits<double>::quiet_NaN()}};
  c.index = 4;
  c.files["a.txt"] = "hello";
  c.files["sub/b.bin"] = std::string("\0\1\2", 3);
  c.save(dir.file("c.h5"));

  const Checkpoint r = Checkpoint::load(dir.file("c.h5"));
  ASSERT_EQ(r.tensors.size(), 3u);
  EXPECT_TRUE(r.tensors.at("model/layer.0/weight").equal(c.tensors.at("model/layer.0/weight")));
  EXPECT_EQ(r.tensors.at("step").scalar_type(), torch::kInt64);
  EXPECT_EQ(r.tensors.at("step").item<int64_t>(), 7);
  EXPECT_TRUE(r.tensors.at("half").equal(c.tensors.at("half")));
  EXPECT_EQ(r.state, c.state);
  EXPECT_EQ(r.metrics.at("loss"), 0.25);
  EXPECT_TRUE(std::isnan(r.metrics.at("nan")));
  EXPECT_EQ(r.index, 4);
  EXPECT_EQ(r.path, dir.file("c.h5"));
  EXPECT_EQ(r.files, c.files);
}

TEST(LoopCheckpoint, DirectoryRoundTrip) {
  TempDir dir;
  fs::create_directories(dir.path / "in" / "deep");
  std::ofstream(dir.file("in/top.json")) << "{\"a\": 1}";
  std::ofstream(dir.file("in/deep/x.bin"), std::ios::binary) << std::string("\xff\0z", 3);
  Checkpoint c = Checkpoint::from_directory(dir.file("in"));
  ASSERT_EQ(c.files.size(), 2u);
  c.save(dir.file("d.h5"));
  const std::string out = Checkpoint::load(dir.file("d.h5")).to_directory(dir.file("out"));
  std::ifstream a(out + "/deep/x.bin", std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(a), {}), std::string("\xff\0z", 3));
  EXPECT_NE(error_of<CheckpointError>([&] { Checkpoint::from_directory(dir.file("missing")); }), "<no error>");
}

TEST(LoopCheckpoint, LoadOfAMissingOrCorruptFileNamesIt) {
  TempDir dir;
  EXPECT_NE(error_of<CheckpointError>([&] { Checkpoint::load(dir.file("none.h5")); }).find("none.h5"),
            std::string::npos);
  std::ofstream(dir.file("junk.h5")) << "not hdf5";
  EXPECT_NE(error_of<CheckpointError>([&] { Checkpoint::load(dir.file("junk.h5")); }), "<no error>");
}

TEST(LoopCheckpoint, ModuleRoundTripAndStrictLoading) {
  torch::manual_seed(1);
  Net a, b;
  a->bn->running_mean.fill_(0.5);
  Checkpoint c;
  c.add_module("model", *a);
  EXPECT_TRUE(c.tensors.count("model/fc.weight") && c.tensors.count("model/bn.running_mean"));
  c.load_module("model", *b);
  EXPECT_TRUE(b->fc->weight.equal(a->fc->weight));
  EXPECT_TRUE(b->bn->running_mean.equal(a->bn->running_mean));

  // A wrong shape: an error naming the tensor, and the module is left as it was.
  Net d;
  const torch::Tensor before = d->fc->weight.clone();
  Checkpoint bad = c;
  bad.tensors["model/fc.weight"] = torch::zeros({5, 5});
  EXPECT_NE(error_of<CheckpointError>([&] { bad.load_module("model", *d); }).find("fc.weight"), std::string::npos);
  EXPECT_TRUE(d->fc->weight.equal(before));
  // A missing tensor.
  Checkpoint missing = c;
  missing.tensors.erase("model/bn.running_var");
  EXPECT_NE(error_of<CheckpointError>([&] { missing.load_module("model", *d); }).find("bn.running_var"),
            std::string::npos);
  EXPECT_TRUE(d->fc->weight.equal(before));
  // Strict: a tensor under the prefix that the module does not have.
  Checkpoint extra = c;
  extra.tensors["model/fc.scale"] = torch::ones({2});
  EXPECT_NE(error_of<CheckpointError>([&] { extra.load_module("model", *d); }).find("model/fc.scale"),
            std::string::npos);
  EXPECT_TRUE(d->fc->weight.equal(before));
  // A wrong dtype.
  Checkpoint dtype = c;
  dtype.tensors["model/fc.bias"] = dtype.tensors["model/fc.bias"].to(torch::kFloat64);
  EXPECT_NE(error_of<CheckpointError>([&] { dtype.load_module("model", *d); }).find("fc.bias"), std::string::npos);
}

TEST(LoopCheckpoint, ToDirectoryRefusesPathsOutsideIt) {
  TempDir dir;
  Checkpoint c;
  c.files["../escape.txt"] = "x";
  EXPECT_NE(error_of<CheckpointError>([&] { c.to_directory(dir.file("out")); }).find("../escape.txt"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(dir.path / "escape.txt"));
}

TEST(LoopCheckpoint, OptimizerRoundTripThroughAFile) {
  TempDir dir;
  torch::manual_seed(2);
  Net a;
  torch::optim::Adam adam(a->parameters(), torch::optim::AdamOptions(0.01));
  for (int i = 0; i < 3; ++i) {
    adam.zero_grad();
    a->forward(torch::randn({4, 3})).pow(2).sum().backward();
    adam.step();
  }
  Checkpoint c;
  c.add_module("model", *a);
  c.add_optimizer("optimizer", adam, *a);
  c.save(dir.file("o.h5"));
  const Checkpoint r = Checkpoint::load(dir.file("o.h5"));

  Net b;
  torch::optim::Adam adam_b(b->parameters(), torch::optim::AdamOptions(0.5));
  r.load_module("model", *b);
  r.load_optimizer("optimizer", adam_b, *b);
  EXPECT_DOUBLE_EQ(static_cast<torch::optim::AdamOptions&>(adam_b.param_groups()[0].options()).lr(), 0.01);
  // One more identical step on both: equal weights only if the moments and step counts came back.
  torch::manual_seed(3);
  const torch::Tensor x = torch::randn({4, 3});
  for (auto* p : {&adam, &adam_b}) p->zero_grad();
  a->forward(x).pow(2).sum().backward();
  b->forward(x).pow(2).sum().backward();
  adam.step();
  adam_b.step();
  EXPECT_TRUE(a->fc->weight.equal(b->fc->weight));
  // The loaded moments are the optimizer's own: stepping did not change the checkpoint read back.
  EXPECT_TRUE(r.tensors.at("optimizer/fc.weight/exp_avg").equal(Checkpoint::load(dir.file("o.h5")).tensors.at("optimizer/fc.weight/exp_avg")));

  torch::optim::SGD sgd(b->parameters(), torch::optim::SGDOptions(0.1));
  EXPECT_NE(error_of<CheckpointError>([&] { r.load_optimizer("optimizer", sgd, *b); }), "<no error>");
}

// ---- CheckpointManager ----------------------------------------------------------------------

// Reports `scores` through a manager (an empty file per checkpoint, as the session would write).
std::vector<int64_t> report_all(const std::string& dir, const CheckpointConfig& cfg, const std::vector<double>& scores) {
  detail::CheckpointManager m(dir, cfg);
  for (double s : scores) {
    std::ofstream(m.next_path()) << "x";
    m.add({{"score", s}});
  }
  std::vector<int64_t> out;
  for (const auto& e : m.best()) out.push_back(e.index);
  return out;
}

std::set<std::string> h5_files(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".h5") out.insert(e.path().filename().string());
  return out;
}

TEST(CheckpointManager, KeepsTheBestByScoreAndTheLatest) {
  TempDir d1, d2, d3, d4;
  using V = std::vector<int64_t>;
  EXPECT_EQ(report_all(d1.path, {2, "score", "max"}, {1, 3, 2, 5, 4}), (V{3, 4}));
  EXPECT_EQ(h5_files(d1.path), (std::set<std::string>{"checkpoint_000003.h5", "checkpoint_000004.h5"}));
  // The latest (index 4, score 9) is not among the best 2 by min: it stays as well.
  EXPECT_EQ(report_all(d2.path, {2, "score", "min"}, {5, 1, 4, 2, 9}), (V{1, 3, 4}));
  EXPECT_EQ(h5_files(d2.path).size(), 3u);
  // No attribute: by recency.
  EXPECT_EQ(report_all(d3.path, {2, "", "max"}, {1, 2, 3, 4}), (V{3, 2}));
  // Ties: newer first; NaN last whatever the order.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(report_all(d4.path, {-1, "score", "max"}, {2, nan, 2, 1}), (V{2, 0, 3, 1}));
}

TEST(CheckpointManager, ManifestSurvivesARelaunch) {
  TempDir dir;
  report_all(dir.path, {2, "score", "max"}, {1, 3, 2});
  detail::CheckpointManager again(dir.path, {2, "score", "max"});
  EXPECT_EQ(again.next_index(), 3);
  ASSERT_TRUE(again.latest());
  EXPECT_EQ(again.latest()->index, 2);
  EXPECT_EQ(again.latest()->metrics.at("score"), 2);
  std::ifstream latest(dir.file("latest"));
  std::string name;
  latest >> name;
  EXPECT_EQ(name, "checkpoint_000002.h5");
  std::ofstream(again.next_path()) << "x";
  again.add({{"score", 0}});
  // Index 3 (score 0) is not among the best 2 but is the latest: it stays with them.
  EXPECT_EQ(h5_files(dir.path),
            (std::set<std::string>{"checkpoint_000001.h5", "checkpoint_000002.h5", "checkpoint_000003.h5"}));
  std::ofstream(again.next_path()) << "x";
  again.add({{"score", 5}});  // now the latest is the best: index 3 goes, and 2 with it
  EXPECT_EQ(h5_files(dir.path), (std::set<std::string>{"checkpoint_000001.h5", "checkpoint_000004.h5"}));
}

TEST(CheckpointManager, BadConfigAndMissingMetricAreConfigErrors) {
  TempDir dir;
  EXPECT_NE(error_of<ConfigError>([&] { detail::CheckpointManager(dir.path, {0, "", "max"}); }).find("num_to_keep"),
            std::string::npos);
  EXPECT_NE(error_of<ConfigError>([&] { detail::CheckpointManager(dir.path, {1, "x", "up"}); }).find("max"),
            std::string::npos);
  detail::CheckpointManager m(dir.path, {1, "val_loss", "min"});
  const std::string e = error_of<ConfigError>([&] { m.add({{"loss", 1.0}}); });
  EXPECT_NE(e.find("'val_loss' was not reported"), std::string::npos) << e;
  EXPECT_NE(e.find("loss"), std::string::npos);
  EXPECT_TRUE(m.empty());
  EXPECT_FALSE(fs::exists(dir.file("checkpoints.json")));
}

TEST(CheckpointManager, UnreadableManifestIsACheckpointError) {
  TempDir dir;
  std::ofstream(dir.file("checkpoints.json")) << "{not json";
  EXPECT_NE(error_of<CheckpointError>([&] { detail::CheckpointManager(dir.path, {}); }).find("checkpoints.json"),
            std::string::npos);
}

}  // namespace
}  // namespace mpitrain::loop
