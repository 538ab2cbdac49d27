// The seed example (Ray Train's PyTorch Lightning guide, in mpitrain): ResNet-18 on Fashion-MNIST,
// Adam 1e-3, batch 128 per worker, 2 workers. Run it alone (it spawns its 2 workers), or under
// mpirun -n 2 / srun -n 2 --mpi=pmix. Extra flags: --epochs N, --limit-train-batches N (smoke runs).
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "mpitrain/launch/runtime.hpp"
#include "mpitrain/train/trainer.hpp"

int main(int argc, char** argv) {
  mpitrain::Runtime rt(argc, argv);  // spawned workers train in here and exit
  mpitrain::TrainerOptions opts;
  opts.max_epochs = 10;
  opts.scaling.num_workers = 2;
  opts.default_root_dir = "fashion_mnist_resnet_logs";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--epochs")) opts.max_epochs = std::atoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--limit-train-batches")) {
      opts.limit_train_batches = opts.limit_val_batches = std::atoll(argv[i + 1]);
      opts.run_test = false;  // a smoke run: skip the full test-set pass
    }
    else {
      std::cerr << "usage: " << argv[0] << " [--epochs N] [--limit-train-batches N]\n";
      return 2;
    }
  }
  const mpitrain::Config config = {{"model", "resnet18"}, {"dataset", "fashion-mnist"}, {"optimizer", "adam"},
                                   {"lr", 1e-3},          {"batch_size", 128}};
  try {
    mpitrain::FitResult r = mpitrain::Trainer(opts).fit("Classifier", config);  // the Classifier of apps/train
    if (!r.ok()) {
      std::cerr << "fit failed: " << r.error << "\n";
      return r.exit_code();
    }
    if (rt.env().rank == 0)
      std::cout << (r.metrics.count("test_acc") ? "test" : "validation") << " accuracy "
                << r.metrics[r.metrics.count("test_acc") ? "test_acc" : "val_acc"] << " after " << r.stats.epochs << " epochs, "
                << r.stats.samples_per_s << " samples/s\n";
  } catch (const mpitrain::ConfigError& e) {
    std::cerr << e.what() << "\n";
    return 2;
  }
  return 0;
}
