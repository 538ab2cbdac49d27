// Ray Train's "Native PyTorch" quickstart in C++: an MLP on Fashion-MNIST trained by a
// hand-written loop (prepare_model, prepare_data_loader), the test loss and accuracy over the
// whole test set reported every epoch with a checkpoint. Run it alone (it spawns its workers) or
// under mpirun -n 2 / srun -n 2 --mpi=pmix.
#include <torch/torch.h>

#include "mpitrain/data/fashion_mnist.hpp"
#include "mpitrain/launch/runtime.hpp"
#include "mpitrain/train/loop/prepare.hpp"
#include "mpitrain/train/loop/session.hpp"
#include "train_loop_cli.hpp"

namespace loop = mpitrain::loop;

namespace {

struct NeuralNetworkImpl : torch::nn::Module {
  NeuralNetworkImpl() {
    stack = register_module("linear_relu_stack",
                            torch::nn::Sequential(torch::nn::Linear(28 * 28, 512), torch::nn::ReLU(),
                                                  torch::nn::Linear(512, 512), torch::nn::ReLU(), torch::nn::Linear(512, 10)));
  }
  torch::Tensor forward(const torch::Tensor& x) { return stack->forward(x.flatten(1)); }
  torch::nn::Sequential stack{nullptr};
};
TORCH_MODULE(NeuralNetwork);

void train_func(const nlohmann::json& config) {
  const std::string dir = config.value("data_dir", mpitrain::kFashionMnistDir);
  auto train_data = mpitrain::load_fashion_mnist(dir, true, 0.0, 1.0);  // ToTensor(): pixels in [0, 1]
  auto test_data = mpitrain::load_fashion_mnist(dir, false, 0.0, 1.0);
  const int64_t batch = config.value("batch_size", 64);  // per worker
  auto train_loader = loop::prepare_data_loader(train_data, batch, true, config.value("seed", 0));
  auto test_loader = loop::prepare_data_loader(test_data, batch, false);

  torch::manual_seed(config.value("seed", 0));
  NeuralNetwork model;
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(config.value("lr", 1e-3)));
  loop::PreparedModel ddp = loop::prepare_model(*model, &optimizer, {config.value("strategy", "ddp"), {}});

  int64_t start_epoch = 0;
  if (auto checkpoint = loop::get_checkpoint()) {
    ddp.load(*checkpoint);
    start_epoch = checkpoint->state.value("epoch", -1) + 1;
  }
  train_loader.set_epoch(start_epoch);
  for (int64_t epoch = start_epoch; epoch < config.value("epochs", 2); ++epoch) {
    model->train();
    for (mpitrain::Batch& b : train_loader) {
      ddp.zero_grad();
      torch::nn::functional::cross_entropy(model->forward(b.input), b.target).backward();
      ddp.step();
    }
    model->eval();
    std::vector<double> sums = {0, 0, 0};  // loss x examples, correct, examples
    {
      torch::NoGradGuard no_grad;
      for (mpitrain::Batch& b : test_loader) {
        const torch::Tensor logits = model->forward(b.input);
        sums[0] += torch::nn::functional::cross_entropy(logits, b.target).item<double>() * double(b.size());
        sums[1] += logits.argmax(1).eq(b.target).sum().item<double>();
        sums[2] += double(b.size());
      }
    }
    sums = loop::allreduce(sums);  // over the whole test set, every worker's part
    loop::Checkpoint checkpoint;
    checkpoint.state = {{"epoch", epoch}};
    ddp.save(checkpoint);
    loop::report({{"epoch", double(epoch)}, {"test_loss", sums[0] / sums[2]}, {"accuracy", sums[1] / sums[2]}}, checkpoint);
  }
}
MPITRAIN_REGISTER_TRAIN_LOOP("fashion_mnist", train_func);

}  // namespace

int main(int argc, char** argv) {
  mpitrain::Runtime rt(argc, argv);
  const bool printer = rt.env().rank == 0;
  examples::LoopCli cli;
  nlohmann::json config;
  int64_t epochs = 2, batch = 64;
  double lr = 1e-3;
  std::string strategy, data_dir;
  namespace po = boost::program_options;
  po::options_description desc("train_loop_fashion_mnist [options]  (an MLP on Fashion-MNIST in a hand-written loop)");
  desc.add_options()("help,h", "show this help")
      ("epochs", po::value(&epochs)->default_value(2), "epochs")
      ("batch-size", po::value(&batch)->default_value(64), "batch size per worker")
      ("lr", po::value(&lr)->default_value(1e-3), "Adam's learning rate")
      ("strategy", po::value(&strategy)->default_value("ddp"), "a registered strategy: ddp, horovod, sharded, ...")
      ("data-dir", po::value(&data_dir)->default_value(mpitrain::kFashionMnistDir), "Fashion-MNIST IDX files");
  cli.add_options(desc, "fashion_mnist");
  if (int rc = examples::parse(argc, argv, desc, printer, "train_loop_fashion_mnist"); rc >= 0) return rc;
  config = {{"epochs", epochs}, {"batch_size", batch}, {"lr", lr}, {"strategy", strategy}, {"data_dir", data_dir}};
  return examples::run(cli, config, printer, "train_loop_fashion_mnist");
}
