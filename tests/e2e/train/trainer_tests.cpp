// Trainer behaviour through fit(): a training_step that returns a non-scalar, EarlyStopping,
// metric aggregation across ranks, resume from `latest`, validate()/test() as separate calls
// (run alone: spawn; or under mpirun).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "mpitrain/data/synthetic.hpp"
#include "../../support/fit_test_support.hpp"
#include "mpitrain/launch/runtime.hpp"
#include "mpitrain/train/trainer.hpp"

namespace mpitrain {
namespace {

// A linear model on synthetic data; what it logs is steered by the config.
struct Probe : Module {
  Config cfg;
  torch::nn::Linear lin{nullptr};
  explicit Probe(const Config& c) : cfg(c) { lin = register_module("lin", torch::nn::Linear(8, 3)); }
  torch::Tensor training_step(const Batch& b, int64_t) override {
    auto loss = torch::nn::functional::cross_entropy(lin->forward(b.input), b.target, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
    return cfg.value("non_scalar", false) ? loss : loss.mean();
  }
  void validation_step(const Batch& b, int64_t) override {
    // A metric that never improves, and one whose cross-rank mean is known: (rank + 1) weighted by batch.
    log("flat", 1.0, {}, b.size());
    log("rank_plus_one", double(rank() + 1), {}, b.size());
  }
  Optimizers configure_optimizers() override { return {std::make_shared<torch::optim::SGD>(parameters(), torch::optim::SGDOptions(0.1)), nullptr}; }
  DataLoaders dataloaders() override {
    DataLoaders d;
    d.train = make_synthetic_classification(64, {8}, 3, 1);
    d.val = make_synthetic_classification(32, {8}, 3, 2);
    d.batch_size = 8;
    return d;
  }
};
MPITRAIN_REGISTER_MODULE(Probe);

TrainerOptions options() {
  TrainerOptions o;
  o.enable_progress_bar = false;
  o.default_root_dir = ::testing::TempDir() + "/mpitrain-trainer-tests";
  return o;
}

TEST(Trainer, NonScalarLossIsANamedError) {
  FitResult r = Trainer(options()).fit<Probe>({{"non_scalar", true}});
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.error.find("training_step must return a scalar loss, got a tensor of shape [8]"), std::string::npos) << r.error;
  EXPECT_EQ(r.error_kind, ErrorKind::Config) << "bad input, not a crash: the CLI exits 2 on it";
}

// A fresh directory per test and job (tests/support/fit_test_support.hpp).
struct FreshDir : test::FreshDir {
  explicit FreshDir(const std::string& name) : test::FreshDir("trainer-tests", name) {}
};

TrainerOptions options_in(const FreshDir& dir) {
  TrainerOptions o = options();
  o.default_root_dir = dir.path;
  return o;
}

TEST(Trainer, FitResumesFromLatestAndContinuesCounting) {
  FreshDir dir("resume");
  TrainerOptions o = options_in(dir);
  FitResult first = Trainer(o).fit<Probe>({});
  ASSERT_TRUE(first.ok()) << first.error;
  ASSERT_FALSE(first.checkpoint.empty());
  o.max_epochs = 3;
  FitResult more = Trainer(o).fit<Probe>({}, "latest");
  ASSERT_TRUE(more.ok()) << more.error;
  EXPECT_EQ(more.stats.steps, 3 * first.stats.steps) << "epochs 2 and 3 continue epoch 1's count";
  EXPECT_EQ(more.stats.epochs, 3);
  EXPECT_EQ(more.metrics.at("best_flat"), 1.0) << "best values are kept as well as the last";
  EXPECT_NE(more.checkpoint.find("epoch=2-step="), std::string::npos) << more.checkpoint;
}

TEST(Trainer, ValidateAndTestAreSeparateCalls) {
  FreshDir dir("validate");
  TrainerOptions o = options_in(dir);
  ASSERT_TRUE(Trainer(o).fit<Probe>({}).ok());
  FitResult v = Trainer(o).validate("Probe", {}, "latest");
  ASSERT_TRUE(v.ok()) << v.error;
  EXPECT_EQ(v.metrics.at("flat"), 1.0);
  EXPECT_EQ(v.checkpoint.substr(v.checkpoint.size() - 3), ".h5") << "the checkpoint it evaluated";
  EXPECT_EQ(v.stats.steps, 0) << "validate trains nothing";
}

TEST(Trainer, EvaluationErrorsAreNamed) {
  FreshDir dir("evaluate-errors");
  TrainerOptions o = options_in(dir);
  FitResult none = Trainer(o).validate("Probe", {}, "latest");  // nothing trained in this directory
  EXPECT_EQ(none.error_kind, ErrorKind::Checkpoint);
  EXPECT_NE(none.error.find("no checkpoint to resume from"), std::string::npos) << none.error;
  FitResult test = Trainer(o).test("Probe", {}, "");  // Probe has no test set
  EXPECT_EQ(test.error_kind, ErrorKind::Config);
  EXPECT_NE(test.error.find("dataloaders(): no test dataset"), std::string::npos) << test.error;
}

TEST(Trainer, EarlyStoppingStopsAfterPatienceEpochsWithoutImprovement) {
  TrainerOptions o = options();
  o.max_epochs = 10;
  o.early_stopping.monitor = "flat";
  o.early_stopping.patience = 2;
  FitResult r = Trainer(o).fit<Probe>({});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.stats.epochs, 3) << "epoch 1 sets the best, epochs 2 and 3 do not improve";
  EXPECT_EQ(r.metrics.at("early_stopping_best"), 1.0);
}

TEST(Trainer, MetricsAreAveragedOverRanks) {
  FitResult r = Trainer(options()).fit<Probe>({});
  ASSERT_TRUE(r.ok()) << r.error;
  // Every rank validates 16 of the 32 examples (2 ranks) with value rank+1: mean (1+2)/2.
  const int n = Runtime::current()->role() == Role::Spmd ? Runtime::current()->env().world_size : 2;
  EXPECT_DOUBLE_EQ(r.metrics.at("rank_plus_one"), (n + 1) / 2.0);
  EXPECT_EQ(r.stats.steps, 64 / 8 / n);
}

TEST(Trainer, BadOptionsAreRejectedUpFront) {
  TrainerOptions o = options();
  o.accumulate_grad_batches = 0;
  EXPECT_THROW(Trainer{o}, ConfigError);
  try {
    Trainer(options()).fit("NoSuchModule", {});
    ADD_FAILURE();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown module 'NoSuchModule' (registered: Probe)"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mpitrain

int main(int argc, char** argv) { return mpitrain::test::run_fit_tests(argc, argv); }
