// Ray Train's "Saving and loading checkpoints" example in C++: a toy linear model trained by a
// hand-written loop that reports a checkpoint every epoch and, started again (a relaunch after a
// failure, or --resume-from), continues from the last one. Run it alone (it spawns its workers) or
// under mpirun -n 2 / srun -n 2 --mpi=pmix.
#include <torch/torch.h>

#include "mpitrain/launch/runtime.hpp"
#include "mpitrain/train/loop/prepare.hpp"
#include "mpitrain/train/loop/session.hpp"
#include "train_loop_cli.hpp"

namespace loop = mpitrain::loop;

namespace {

void train_func(const nlohmann::json& config) {
  const auto& ctx = loop::get_context();
  // A toy dataset of this worker's own: X (n, 4), Y (n, 1).
  torch::manual_seed(config.value("seed", 0) + ctx.world_rank);
  const int64_t n = 100;
  const torch::Tensor X = torch::randn({n, 4}), Y = torch::rand({n, 1});

  torch::manual_seed(config.value("seed", 0));
  torch::nn::Linear model(4, 1);
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(config.value("lr", 3e-4)));
  loop::PreparedModel ddp = loop::prepare_model(*model, &optimizer);  // wrap in DDP

  int64_t start_epoch = 0;
  if (auto checkpoint = loop::get_checkpoint()) {  // after a relaunch: where the last report left off
    ddp.load(*checkpoint);
    start_epoch = checkpoint->state.value("epoch", -1) + 1;
  }
  for (int64_t epoch = start_epoch; epoch < config.value("num_epochs", 5); ++epoch) {
    ddp.zero_grad();
    const torch::Tensor loss = torch::mse_loss(model->forward(X), Y);
    loss.backward();
    ddp.step();
    loop::Checkpoint checkpoint;
    checkpoint.state = {{"epoch", epoch}};
    ddp.save(checkpoint);  // model weights and Adam's state
    loop::report({{"epoch", double(epoch)}, {"loss", loss.item<double>()}}, checkpoint);
  }
}
MPITRAIN_REGISTER_TRAIN_LOOP("train_func", train_func);

}  // namespace

int main(int argc, char** argv) {
  mpitrain::Runtime rt(argc, argv);  // spawned workers run train_func in here and exit
  const bool printer = rt.env().rank == 0;
  examples::LoopCli cli;
  int64_t epochs = 5;
  double lr = 3e-4;
  boost::program_options::options_description desc(
      "train_loop_linear [options]  (a toy linear model in a hand-written loop, a checkpoint every epoch)");
  desc.add_options()("help,h", "show this help")
      ("epochs", boost::program_options::value(&epochs)->default_value(5), "num_epochs of the train_loop_config")
      ("lr", boost::program_options::value(&lr)->default_value(3e-4, "3e-4"), "Adam's learning rate");
  cli.add_options(desc, "train_func");
  if (int rc = examples::parse(argc, argv, desc, printer, "train_loop_linear"); rc >= 0) return rc;
  return examples::run(cli, {{"num_epochs", epochs}, {"lr", lr}}, printer, "train_loop_linear");
}
