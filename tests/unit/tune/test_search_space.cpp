// Search spaces: every distribution within its bounds, grid x samples as in Tune, the same seed
// giving the same trials, and malformed spaces as one ConfigError naming the key or the line.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <set>

#include "mpitrain/errors.hpp"
#include "mpitrain/tune/search_space.hpp"
#include "../../support/temp_dir.hpp"

namespace mpitrain::tune {
namespace {

using nlohmann::json;

const json kSeedSpace = json::parse(R"({"layer_1": {"choice": [32, 64, 128]}, "layer_2": {"choice": [64, 128, 256]},
  "lr": {"loguniform": [1e-4, 1e-1]}, "batch_size": {"choice": [32, 64, 128]}, "epochs_x": 3})");

TEST(SearchSpace, SeedExampleDrawsEveryDistributionWithinBounds) {
  const auto trials = SearchSpace::from_json(kSeedSpace).generate(60, 7);
  ASSERT_EQ(trials.size(), 60u);
  std::set<int> l1, bs;
  for (const auto& t : trials) {
    l1.insert(t.at("layer_1").get<int>());
    bs.insert(t.at("batch_size").get<int>());
    const double lr = t.at("lr");
    EXPECT_GE(lr, 1e-4);
    EXPECT_LE(lr, 1e-1);
    EXPECT_EQ(t.at("epochs_x"), 3);
  }
  EXPECT_EQ(l1, (std::set<int>{32, 64, 128}));
  EXPECT_EQ(bs, (std::set<int>{32, 64, 128}));
  // loguniform: about half the draws below the geometric midpoint 10^-2.5
  int low = 0;
  for (const auto& t : trials) low += t.at("lr").get<double>() < std::pow(10.0, -2.5);
  EXPECT_GT(low, 15);
  EXPECT_LT(low, 45);
}

TEST(SearchSpace, SameSeedSameTrialsOtherSeedOthers) {
  const auto s = SearchSpace::from_json(kSeedSpace);
  EXPECT_EQ(s.generate(8, 42), s.generate(8, 42));
  EXPECT_NE(s.generate(8, 42), s.generate(8, 43));
}

TEST(SearchSpace, GridTimesSamples) {
  const auto s = SearchSpace::from_json(json::parse(
      R"({"opt": {"grid_search": ["sgd", "adam"]}, "wd": {"grid_search": [0, 0.1, 0.2]}, "lr": {"uniform": [0.1, 0.2]}})"));
  const auto trials = s.generate(2, 0);
  ASSERT_EQ(trials.size(), 12u);  // 2 x 3 combinations, 2 samples each
  std::set<std::string> combos;
  for (const auto& t : trials) combos.insert(t.at("opt").get<std::string>() + "/" + t.at("wd").dump());
  EXPECT_EQ(combos.size(), 6u);
}

TEST(SearchSpace, QuniformAndRandint) {
  const auto s = SearchSpace::from_json(json::parse(R"({"b": {"quniform": [16, 128, 16]}, "k": {"randint": [0, 5]}})"));
  std::set<int64_t> ks;
  for (const auto& t : s.generate(100, 3)) {
    const double b = t.at("b");
    EXPECT_EQ(std::fmod(b, 16.0), 0.0) << b;
    EXPECT_GE(b, 16);
    EXPECT_LE(b, 128);
    ks.insert(t.at("k").get<int64_t>());
  }
  EXPECT_EQ(ks, (std::set<int64_t>{0, 1, 2, 3, 4}));  // high excluded, as Tune's randint
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no ConfigError)";
}

TEST(SearchSpace, MalformedSpacesNameTheProblem) {
  auto parse = [](const char* s) { return error_of([&] { SearchSpace::from_json(json::parse(s)); }); };
  EXPECT_NE(parse(R"({"lr": {"lognormal": [1, 2]}})").find("'lr': unknown distribution 'lognormal'"), std::string::npos);
  EXPECT_NE(parse(R"({"lr": {"uniform": [2, 1]}})").find("'lr': uniform low > high"), std::string::npos);
  EXPECT_NE(parse(R"({"l": {"choice": []}})").find("'l': choice needs a non-empty list"), std::string::npos);
  EXPECT_NE(parse(R"({"lr": {"loguniform": [0, 1]}})").find("loguniform needs low > 0"), std::string::npos);
  EXPECT_NE(parse(R"({"b": {"quniform": [1, 2]}})").find("quniform needs [low, high, q]"), std::string::npos);
  EXPECT_NE(parse(R"({})").find("no hyperparameters"), std::string::npos);
}

TEST(SearchSpace, JsonErrorNamesItsLine) {
  test::TempDir dir;
  const std::string path = dir.file("space.json");
  std::ofstream(path) << "{\n  \"lr\": {\"uniform\": [0.1, 0.2]},\n  \"b\": [1, 2,, 3]\n}\n";
  const std::string e = error_of([&] { SearchSpace::from_file(path); });
  EXPECT_NE(e.find(path + ":3:"), std::string::npos) << e;
  EXPECT_NE(e.find("JSON error"), std::string::npos) << e;
  EXPECT_NE(error_of([] { SearchSpace::from_file("/nonexistent/space.json"); }).find("cannot be read"), std::string::npos);
}

}  // namespace
}  // namespace mpitrain::tune
