// The seed example (Ray Train's PyTorch Lightning guide, in mpitrain): torchvision's ResNet-18 with
// its first convolution replaced by Conv2d(1, 64, 7, stride 2, padding 3, bias=False), Fashion-MNIST
// normalised with mean 0.5 / std 0.5, Adam 1e-3, batch 128 per worker, max_epochs 10, 2 workers;
// at the end the Result the guide prints (metrics, checkpoint, log path, error). Run it alone (it
// spawns its workers), or under mpirun -n 2 / srun -n 2 --mpi=pmix. Exit codes as mpitrain-train's.
#include <boost/program_options.hpp>
#include <iostream>

#include "mpitrain/detail/json_number.hpp"
#include "mpitrain/launch/runtime.hpp"
#include "mpitrain/train/trainer.hpp"

namespace po = boost::program_options;

int main(int argc, char** argv) {
  mpitrain::Runtime rt(argc, argv);  // spawned workers train in here and exit
  const bool printer = rt.env().rank == 0;
  mpitrain::TrainerOptions opts;
  int64_t limit = -1;
  po::options_description desc("fashion_mnist_resnet [options]  (the seed example: ResNet-18 on Fashion-MNIST)");
  desc.add_options()("help,h", "show this help")
      ("epochs", po::value(&opts.max_epochs)->default_value(10), "max_epochs (the guide's 10)")
      ("workers", po::value(&opts.scaling.num_workers)->default_value(2), "workers to spawn when run alone (the guide's 2)")
      ("memory-format", po::value(&opts.memory_format)->default_value("channels_last"),
       "contiguous | channels_last (NHWC weights and batches: oneDNN's layout, faster on CPU)")
      ("limit-train-batches", po::value(&limit)->default_value(-1), "smoke runs: batches per epoch (validation too; no test pass)")
      ("output-dir", po::value(&opts.default_root_dir)->default_value("fashion_mnist_resnet_logs"), "logs and checkpoints");
  try {
    po::variables_map vm;
    po::store(po::command_line_parser(argc, argv).options(desc).positional({}).run(), vm);
    po::notify(vm);
    if (vm.count("help")) {
      if (printer) std::cout << desc << "\n";
      return 0;
    }
  } catch (const po::error& e) {
    if (printer) std::cerr << "fashion_mnist_resnet: " << e.what() << " (see --help)\n";
    return 2;
  }
  if (limit > 0) {
    opts.limit_train_batches = opts.limit_val_batches = limit;
    opts.run_test = false;
  }
  const mpitrain::Config config = {{"model", "resnet18"}, {"dataset", "fashion-mnist"}, {"optimizer", "adam"},
                                   {"lr", 1e-3},          {"batch_size", 128},          {"normalize_mean", 0.5},
                                   {"normalize_std", 0.5}};
  try {
    mpitrain::FitResult r = mpitrain::Trainer(opts).fit("Classifier", config);  // the Classifier of apps/train
    if (printer) {  // as the guide prints result.metrics, result.checkpoint, result.path, result.error
      std::cout << "Result(\n  metrics=" << mpitrain::detail::json_numbers(r.metrics).dump() << ",\n  checkpoint="
                << (r.checkpoint.empty() ? "None" : r.checkpoint) << ",\n  path=" << opts.default_root_dir
                << ",\n  error=" << (r.ok() ? "None" : r.error) << "\n)\n";
      if (r.ok()) std::cout << "wall time " << r.stats.wall_s << " s, " << r.stats.samples_per_s << " samples/s\n";
    }
    return r.exit_code();
  } catch (const mpitrain::Error& e) {
    if (printer) std::cerr << "fashion_mnist_resnet: " << e.what() << "\n";
    return mpitrain::exit_code_for(mpitrain::error_kind_of(e));
  } catch (const std::exception& e) {  // a library's own exception type: one line, never abort
    if (printer) std::cerr << "fashion_mnist_resnet: " << e.what() << "\n";
    return 1;
  }
}
