// A sweep written with the C++ Tuner over a Module of this program's own (not mpitrain-train's):
// 2 x 2 grid (lr x hidden), 3 epochs each, 1 spawned worker per trial, 2 slots; the trial with
// lr 0.002 and hidden 4 fails on purpose and must be recorded, not fatal; every report writes a
// checkpoint.
// Usage: tuner_sweep DIR [fifo|asha]. Prints the best trial's config and checks the results.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "mpitrain/data/synthetic.hpp"
#include "mpitrain/launch/runtime.hpp"
#include "mpitrain/train/module.hpp"
#include "mpitrain/tune/tuner.hpp"

using namespace mpitrain;

namespace {

struct TunerProbe : Module {
  torch::nn::Linear l1{nullptr}, l2{nullptr};
  double lr;
  explicit TunerProbe(const Config& c) : lr(c.at("lr").get<double>()) {
    const int64_t hidden = c.at("hidden").get<int64_t>();
    l1 = register_module("l1", torch::nn::Linear(8, hidden));
    l2 = register_module("l2", torch::nn::Linear(hidden, 3));
  }
  torch::Tensor forward(const torch::Tensor& x) { return l2->forward(torch::relu(l1->forward(x))); }
  torch::Tensor training_step(const Batch& b, int64_t) override {
    return torch::nn::functional::cross_entropy(forward(b.input), b.target);
  }
  void validation_step(const Batch& b, int64_t) override {
    log("val_loss", torch::nn::functional::cross_entropy(forward(b.input), b.target).item<double>(), {}, b.size());
  }
  Optimizers configure_optimizers() override {
    return {std::make_shared<torch::optim::SGD>(parameters(), torch::optim::SGDOptions(lr)), nullptr};
  }
  DataLoaders dataloaders() override {
    DataLoaders d;
    d.train = make_synthetic_classification(256, {8}, 3, 1);
    d.val = make_synthetic_classification(256, {8}, 3, 1);  // the training set: lr decides the loss
    d.batch_size = 16;
    return d;
  }
};
MPITRAIN_REGISTER_MODULE(TunerProbe);

FitResult train_one(const tune::TrialContext& trial) {
  if (trial.config.at("lr").get<double>() < 0.01 && trial.config.at("hidden").get<int>() == 4)
    throw ArgumentError("this trial fails on purpose (lr 0.002, hidden 4)");
  TrainerOptions base;
  base.max_epochs = 3;
  base.enable_progress_bar = false;
  base.seed = 7;
  return Trainer(trial.trainer_options(base)).fit<TunerProbe>(trial.config, "auto");
}

}  // namespace

int main(int argc, char** argv) {
  Runtime rt(argc, argv);  // spawned workers of every trial serve their task in here and exit
  if (argc < 2) {
    std::fprintf(stderr, "usage: tuner_sweep DIR [fifo|asha]\n");
    return 2;
  }
  const std::string scheduler = argc > 2 ? argv[2] : "fifo";
  const nlohmann::json space = {{"lr", {{"grid_search", {0.002, 0.3}}}},
                                {"hidden", {{"grid_search", {4, 16}}}}};
  tune::TuneConfig tc;
  tc.metric = "val_loss";
  tc.mode = "min";
  tc.num_samples = 1;
  tc.seed = 3;
  tc.scheduler = scheduler;
  tc.asha.max_t = 3;
  tc.asha.grace_period = 1;
  tc.asha.reduction_factor = 2;
  tc.checkpoint_every_report = true;
  tune::TuneRunConfig rc;
  rc.dir = argv[1];
  rc.slots = 2;
  try {
    tune::Tuner tuner(train_one, space, tc, rc);
    tune::ResultGrid grid = tuner.fit();
    const tune::TrialResult& best = grid.best_result();
    std::cout << "tuner: " << grid.size() << " trials, " << grid.num_errors() << " failed\n"
              << "Best trial " << best.id << ": val_loss=" << best.last["val_loss"] << "\nBest config: " << best.config.dump()
              << "\nBest checkpoint: " << best.checkpoint << "\n";
    for (const auto& r : grid.results())
      std::cout << "trial " << r.id << " " << r.status << " iterations=" << r.iterations
                << " last_checkpoint=" << r.last.value("checkpoint", std::string("-")) << " error=" << r.error << "\n";
    return 0;
  } catch (const Error& e) {
    std::cerr << "tuner_sweep: " << e.what() << "\n";
    return exit_code_for(error_kind_of(e));
  }
}
