// The extension seams, used from a test file alone (no Trainer change): a toy strategy (local SGD:
// every rank steps on its own data, parameters are averaged every k steps) and a user callback
// that records the hooks it sees and keeps state across a checkpoint and resume, both registered
// by name and run through fit() spawned (run alone) or in place (under mpirun).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "mpitrain/comm/tensor_collectives.hpp"
#include "mpitrain/data/synthetic.hpp"
#include "../../support/fit_test_support.hpp"
#include "mpitrain/launch/runtime.hpp"
#include "mpitrain/strategy/registry.hpp"
#include "mpitrain/train/trainer.hpp"

namespace mpitrain {
namespace {

// ---- a strategy in a dozen lines: local SGD ---------------------------------------------------
class LocalSgd final : public Strategy {
 public:
  explicit LocalSgd(int every) : every_(every) {
    if (every_ < 1) throw ConfigError("local_sgd: every must be >= 1 (got " + std::to_string(every_) + ")");
  }
  const char* name() const override { return "local_sgd"; }
  void setup(torch::nn::Module& model, torch::optim::Optimizer* optimizer, Engine& engine) override {
    Strategy::setup(model, optimizer, engine);
    for (auto& p : model.parameters()) engine.enqueue([t = p.data()](Communicator& c) mutable { broadcast(c, t, 0); });
    engine.synchronize();
  }
  // No gradient sync at all (before/after_backward keep their no-op defaults): ranks drift apart.
  void optimizer_step() override {
    optimizer_->step();
    if (++steps_ % every_ != 0) return;
    before_ = std::max(before_, spread());
    for (auto& p : model_->parameters())
      engine_->enqueue([t = p.data()](Communicator& c) mutable { allreduce(c, t, ReduceOp::Avg); });
    engine_->synchronize();
    after_ = std::max(after_, spread());
    ++syncs_;
  }
  std::map<std::string, double> stats() const override {
    return {{"syncs", double(syncs_)}, {"spread_before_sync", before_}, {"spread_after_sync", after_}};
  }

 private:
  // Collective: the largest difference of any parameter element between two ranks.
  double spread() {
    double worst = 0;
    for (auto& p : model_->parameters()) {
      at::Tensor hi = p.detach().clone(), lo = p.detach().clone();
      engine_->enqueue([&](Communicator& c) {
        allreduce(c, hi, ReduceOp::Max);
        allreduce(c, lo, ReduceOp::Min);
      }).wait();
      worst = std::max(worst, (hi - lo).abs().max().item<double>());
    }
    return worst;
  }
  int every_;
  int64_t steps_ = 0, syncs_ = 0;
  double before_ = 0, after_ = 0;
};
MPITRAIN_REGISTER_STRATEGY("local_sgd", [](const nlohmann::json& o) { return std::make_unique<LocalSgd>(o.value("every", 4)); });

// ---- a callback that records hooks (rank 0, to a file) and counts epochs across resumes ----------
class HookRecorder final : public Callback {
 public:
  explicit HookRecorder(const nlohmann::json& o) : path_(o.at("path")) {}
  std::string state_key() const override { return "hook_recorder"; }
  void on_fit_start(FitLoopView& l) override { note(l, "fit_start"); }
  void on_train_epoch_start(FitLoopView& l) override { note(l, "train_epoch_start"); }
  void on_train_batch_start(FitLoopView& l, int64_t b) override { note(l, "train_batch_start " + std::to_string(b)); }
  void on_train_batch_end(FitLoopView& l, int64_t b, bool stepped) override {
    note(l, "train_batch_end " + std::to_string(b) + (stepped ? " step " + std::to_string(l.global_step()) : ""));
  }
  void on_validation_start(FitLoopView& l) override { note(l, "validation_start"); }
  void on_validation_end(FitLoopView& l) override { note(l, "validation_end"); }
  void on_train_epoch_end(FitLoopView& l) override {
    ++epochs_seen_;
    note(l, "train_epoch_end");
  }
  void on_fit_end(FitLoopView& l) override {
    note(l, "fit_end");
    l.report_result_metric("recorder_epochs_seen", double(epochs_seen_));
  }
  nlohmann::json state_dict() const override { return {{"epochs_seen", epochs_seen_}}; }
  void load_state_dict(const nlohmann::json& s) override {
    epochs_seen_ = s.at("epochs_seen");
    loaded_ = true;
  }

 private:
  void note(FitLoopView& l, const std::string& what) {
    if (l.rank() != 0) return;
    std::ofstream out(path_, std::ios::app);
    if (loaded_) out << "loaded epochs_seen=" << epochs_seen_ << "\n";
    loaded_ = false;
    out << what << "\n";
  }
  std::string path_;
  int64_t epochs_seen_ = 0;
  bool loaded_ = false;
};
MPITRAIN_REGISTER_CALLBACK("hook_recorder", [](const nlohmann::json& o) { return std::make_shared<HookRecorder>(o); });

// A linear model on synthetic data (64 training examples, batch 8 per rank).
struct PluginProbe : Module {
  torch::nn::Linear lin{nullptr};
  explicit PluginProbe(const Config& c) : fail_on_rank(c.value("fail_on_rank", -1)) {
    lin = register_module("lin", torch::nn::Linear(8, 3));
  }
  torch::Tensor training_step(const Batch& b, int64_t) override {
    if (rank() == fail_on_rank) throw ArgumentError("PluginProbe: bad batch on this rank only");
    return torch::nn::functional::cross_entropy(lin->forward(b.input), b.target);
  }
  void validation_step(const Batch& b, int64_t) override { log("val_loss", 1.0, {}, b.size()); }
  Optimizers configure_optimizers() override {
    return {std::make_shared<torch::optim::SGD>(parameters(), torch::optim::SGDOptions(0.1)), nullptr};
  }
  DataLoaders dataloaders() override {
    DataLoaders d;
    d.train = make_synthetic_classification(64, {8}, 3, 1);
    d.val = make_synthetic_classification(16, {8}, 3, 2);
    d.batch_size = 8;
    return d;
  }
  int fail_on_rank;
};
MPITRAIN_REGISTER_MODULE(PluginProbe);

}  // namespace
namespace user_models {  // a module in a namespace, registered under a name of its own
struct Qualified : PluginProbe {
  using PluginProbe::PluginProbe;
};
}  // namespace user_models
MPITRAIN_REGISTER_MODULE(user_models::Qualified, "qualified_probe");
namespace {

int world() { return Runtime::current()->role() == Role::Spmd ? Runtime::current()->env().world_size : 2; }

// A fresh directory per test and job (tests/support/fit_test_support.hpp).
struct FreshDir : test::FreshDir {
  explicit FreshDir(const std::string& name) : test::FreshDir("plugin-tests", name) {}
};

TrainerOptions options_in(const FreshDir& dir) {
  TrainerOptions o;
  o.enable_progress_bar = false;
  o.default_root_dir = dir.path;
  return o;
}

TEST(Plugins, ToyStrategyTrainsThroughFitByName) {
  FreshDir dir("strategy");
  TrainerOptions o = options_in(dir);
  o.max_epochs = 2;
  o.strategy = {"local_sgd", {{"every", 2}}};
  FitResult r = Trainer(o).fit<PluginProbe>({});
  ASSERT_TRUE(r.ok()) << r.error;
  const int64_t steps = 2 * 64 / 8 / world();
  EXPECT_EQ(r.stats.steps, steps);
  EXPECT_EQ(r.stats.strategy.at("syncs"), double(steps / 2)) << "parameters averaged every 2nd step";
  EXPECT_GT(r.stats.strategy.at("spread_before_sync"), 1e-6) << "ranks stepped on their own data between syncs";
  EXPECT_EQ(r.stats.strategy.at("spread_after_sync"), 0.0) << "averaging made every rank's parameters equal";
  EXPECT_FALSE(r.stats.strategy.count("buckets")) << "DDP did not run";
  // The strategy's options are validated where it is built, before any worker starts.
  o.strategy.options = {{"every", 0}};
  EXPECT_THROW(Trainer{o}, ConfigError);
}

TEST(Plugins, UserCallbackSeesHooksInOrderAndKeepsItsStateAcrossResume) {
  FreshDir dir("callback");
  TrainerOptions o = options_in(dir);
  const std::string log = dir.path + "/hooks.txt";
  o.callbacks = {{"hook_recorder", {{"path", log}}}};
  FitResult first = Trainer(o).fit<PluginProbe>({});
  ASSERT_TRUE(first.ok()) << first.error;
  EXPECT_EQ(first.metrics.at("recorder_epochs_seen"), 1.0);
  o.max_epochs = 2;
  FitResult more = Trainer(o).fit<PluginProbe>({}, "latest");
  ASSERT_TRUE(more.ok()) << more.error;
  EXPECT_EQ(more.metrics.at("recorder_epochs_seen"), 2.0) << "the count went on from the checkpoint's";

  std::vector<std::string> want;
  const int64_t batches = 64 / 8 / world();
  auto epoch = [&](int64_t first_step) {
    want.push_back("train_epoch_start");
    for (int64_t b = 0; b < batches; ++b) {
      want.push_back("train_batch_start " + std::to_string(b));
      want.push_back("train_batch_end " + std::to_string(b) + " step " + std::to_string(first_step + b));
    }
    for (const char* h : {"validation_start", "validation_end", "train_epoch_end"}) want.push_back(h);
  };
  want.push_back("fit_start");
  epoch(1);
  want.push_back("fit_end");
  want.push_back("loaded epochs_seen=1");  // restored before the second fit's first hook
  want.push_back("fit_start");
  epoch(batches + 1);
  want.push_back("fit_end");
  if (Runtime::current()->env().rank != 0) return;  // rank 0 wrote the file
  std::ifstream in(log);
  std::vector<std::string> got;
  for (std::string line; std::getline(in, line);) got.push_back(line);
  EXPECT_EQ(got, want);
}

TEST(Plugins, UnknownPluginNamesAreConfigErrors) {
  TrainerOptions o;
  o.strategy.name = "no_such_strategy";
  try {
    Trainer{o};
    ADD_FAILURE();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown strategy 'no_such_strategy' (available: ddp, horovod, local_sgd, sharded)"), std::string::npos)
        << e.what();
  }
  o = TrainerOptions{};
  o.callbacks = {{"no_such_callback", {}}};
  EXPECT_THROW(Trainer{o}, ConfigError);
}

TEST(Plugins, QualifiedModuleTypesRegisterUnderTheirOwnName) {
  EXPECT_EQ(registered_module_name(std::type_index(typeid(user_models::Qualified))), "qualified_probe");
  EXPECT_NE(dynamic_cast<user_models::Qualified*>(create_module("qualified_probe", Config::object()).get()), nullptr);
  FreshDir dir("qualified");
  TrainerOptions o = options_in(dir);
  o.checkpoint.enabled = false;
  FitResult r = Trainer(o).fit<user_models::Qualified>({});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.stats.steps, 64 / 8 / world());
}

// Spawn mode only: in SPMD an exception in a worker ends the job by design (Runtime's handler).
TEST(PluginsSpawn, AnArgumentErrorOnOneRankKeepsItsKind) {
  if (Runtime::current()->role() == Role::Spmd) GTEST_SKIP() << "spawn mode only";
  FreshDir dir("argument-error");
  FitResult r = Trainer(options_in(dir)).fit<PluginProbe>({{"fail_on_rank", 1}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error_kind, ErrorKind::Argument);
  EXPECT_EQ(r.failed_rank, 1) << r.error;
  EXPECT_NE(r.error.find("PluginProbe: bad batch on this rank only"), std::string::npos) << r.error;
  EXPECT_EQ(r.exit_code(), 2) << "bad input";
}

}  // namespace
}  // namespace mpitrain

int main(int argc, char** argv) { return mpitrain::test::run_fit_tests(argc, argv); }
