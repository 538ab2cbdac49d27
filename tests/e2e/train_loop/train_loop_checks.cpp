// e2e (issue 17): hand-written loops through FunctionTrainer, checked against what they must equal.
//   train_loop_checks parity <dir>     prepare_model (DDP) loop vs Trainer + DDP: max |dw| after 20 steps
//   train_loop_checks failure <dir>    a worker SIGKILLed mid-run, max_failures 1: resumes from the last
//                                      reported checkpoint, final weights equal an uninterrupted run's
//   train_loop_checks retention <dir>  best_checkpoints order and the files kept, per CheckpointConfig
// Each prints "ok: ..." / "FAIL: ..." lines and exits 0 only if every check passed. Run alone (spawn)
// or under mpirun -n 2 (SPMD; failure needs spawn, for the relaunch).
#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <set>

#include "mpitrain/data/synthetic.hpp"
#include "mpitrain/launch/runtime.hpp"
#include "mpitrain/train/checkpoint.hpp"
#include "mpitrain/train/loop/function_trainer.hpp"
#include "mpitrain/train/loop/prepare.hpp"
#include "mpitrain/train/loop/session.hpp"
#include "mpitrain/train/trainer.hpp"

namespace fs = std::filesystem;
namespace loop = mpitrain::loop;
using nlohmann::json;

namespace {

int failures = 0;
bool printer = true;
std::string sci(double v) {  // differences are printed whole: 0, 3.1e-08, ...
  std::ostringstream o;
  o << std::setprecision(3) << v;
  return o.str();
}

void check(bool good, const std::string& what) {
  if (printer) std::cout << (good ? "ok: " : "FAIL: ") << what << std::endl;
  if (!good) ++failures;
}

// The same network for the Trainer and for the hand-written loops; its initial weights come from
// a seed of its own, so both start from the same point whatever the trainers seed.
struct NetImpl : torch::nn::Module {
  NetImpl() {
    torch::manual_seed(7);
    fc1 = register_module("fc1", torch::nn::Linear(8, 16));
    fc2 = register_module("fc2", torch::nn::Linear(16, 3));
  }
  torch::Tensor forward(const torch::Tensor& x) { return fc2->forward(torch::relu(fc1->forward(x))); }
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Net);

std::shared_ptr<mpitrain::TensorDataset> data() { return mpitrain::make_synthetic_classification(160, {8}, 3, 1); }
constexpr int64_t kBatch = 8;   // per worker: 160 / 2 / 8 = 10 batches per epoch
constexpr uint64_t kSeed = 5;   // the samplers' shuffle

struct ParityModule : mpitrain::Module {
  explicit ParityModule(const mpitrain::Config&) { net = register_module("net", Net()); }
  torch::Tensor training_step(const mpitrain::Batch& b, int64_t) override {
    return torch::nn::functional::cross_entropy(net->forward(b.input), b.target);
  }
  mpitrain::Optimizers configure_optimizers() override {
    return {std::make_shared<torch::optim::SGD>(parameters(), torch::optim::SGDOptions(0.1).momentum(0.9)), nullptr};
  }
  mpitrain::DataLoaders dataloaders() override {
    mpitrain::DataLoaders d;
    d.train = data();
    d.batch_size = kBatch;
    return d;
  }
  Net net{nullptr};
};
MPITRAIN_REGISTER_MODULE(ParityModule);

// The Trainer's loop by hand: the same model, optimizer, data order and number of steps.
void parity_loop(const json& config) {
  Net net;
  torch::optim::SGD sgd(net->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  loop::PreparedModel ddp = loop::prepare_model(*net, &sgd);
  auto loader = loop::prepare_data_loader(data(), kBatch, true, kSeed);
  const int64_t steps = config.at("steps");
  while (ddp.steps() < steps)
    for (mpitrain::Batch& b : loader) {
      if (ddp.steps() == steps) break;
      ddp.zero_grad();
      torch::nn::functional::cross_entropy(net->forward(b.input), b.target).backward();
      ddp.step();
    }
  loop::Checkpoint c;
  ddp.save(c);
  loop::report({{"steps", double(ddp.steps())}}, c);
}
MPITRAIN_REGISTER_TRAIN_LOOP("parity", parity_loop);

// Six epochs with Adam, a checkpoint every epoch; resumes from get_checkpoint() and records which.
void resumable_loop(const json& config) {
  Net net;
  torch::optim::Adam adam(net->parameters(), torch::optim::AdamOptions(0.01));
  loop::PreparedModel ddp = loop::prepare_model(*net, &adam);
  auto loader = loop::prepare_data_loader(data(), kBatch, true, kSeed);
  int64_t start = 0;
  if (auto c = loop::get_checkpoint()) {
    ddp.load(*c);
    start = c->state.at("epoch").get<int64_t>() + 1;
    if (loop::get_context().world_rank == 0)
      std::ofstream(config.at("resume_log").get<std::string>(), std::ios::app)
          << "attempt " << loop::get_context().attempt << " resumed from index " << c->index << " epoch "
          << c->state.at("epoch") << "\n";
  }
  loader.set_epoch(start);
  for (int64_t epoch = start; epoch < 6; ++epoch) {
    double loss = 0;
    for (mpitrain::Batch& b : loader) {
      ddp.zero_grad();
      torch::Tensor l = torch::nn::functional::cross_entropy(net->forward(b.input), b.target);
      l.backward();
      ddp.step();
      loss = l.item<double>();
    }
    loop::Checkpoint c;
    c.state = {{"epoch", epoch}};
    ddp.save(c);
    loop::report({{"epoch", double(epoch)}, {"loss", loss}}, c);
  }
}
MPITRAIN_REGISTER_TRAIN_LOOP("resumable", resumable_loop);

// Reports the configured scores, each with a checkpoint, and metrics-only reports in between.
void scores_loop(const json& config) {
  int i = 0;
  for (double s : config.at("scores").get<std::vector<double>>()) {
    loop::Checkpoint c;
    c.tensors["value"] = torch::full({2}, s);
    c.state = {{"i", i}};
    loop::report({{"score", s}, {"i", double(i)}}, c);
    loop::report({{"i", double(i++)}});
  }
}
MPITRAIN_REGISTER_TRAIN_LOOP("scores", scores_loop);

double max_diff(const std::map<std::string, at::Tensor>& a, const std::map<std::string, at::Tensor>& b,
                const std::string& prefix) {
  double d = 0;
  for (const auto& [k, v] : a) {
    if (k.rfind(prefix, 0) != 0) continue;
    auto it = b.find(k);
    if (it == b.end() || it->second.sizes() != v.sizes()) return INFINITY;
    d = std::max(d, (v - it->second).abs().max().item<double>());
  }
  return d;
}

loop::RunConfig run_in(const std::string& dir, const std::string& name) {
  loop::RunConfig r;
  r.storage_path = dir;
  r.name = name;
  return r;
}

void parity(const std::string& dir) {
  mpitrain::TrainerOptions o;
  o.max_epochs = 10;  // max_steps ends it: 20 steps are 2 epochs of 10 batches
  o.max_steps = 20;
  o.seed = kSeed;
  o.enable_progress_bar = false;
  o.run_test = false;
  o.loggers = {};
  o.default_root_dir = dir + "/trainer";
  o.scaling.num_workers = 2;
  mpitrain::FitResult fr = mpitrain::Trainer(o).fit("ParityModule", {});
  check(fr.ok() && fr.stats.steps == 20, "Trainer + DDP: 20 steps (" + (fr.ok() ? fr.checkpoint : fr.error) + ")");
  loop::Result lr = loop::FunctionTrainer("parity", {{"steps", 20}}, {.num_workers = 2}, run_in(dir, "parity")).fit();
  check(lr.ok() && lr.checkpoint && lr.metrics.at("steps") == 20,
        "prepare_model loop: 20 steps (" + (lr.ok() ? lr.path : lr.error) + ")");
  if (!fr.ok() || !lr.ok() || !lr.checkpoint) return;
  ParityModule from_trainer(mpitrain::Config{});
  mpitrain::load_checkpoint(fr.checkpoint, from_trainer, nullptr, 0);  // its names are "net.fc1.weight", ...
  loop::Checkpoint t;
  for (const auto& p : from_trainer.net->named_parameters()) t.tensors["model/" + p.key()] = p.value();
  const double d = max_diff(lr.checkpoint->load().tensors, t.tensors, "model/");
  check(d <= 1e-5, "parity with Trainer + DDP after 20 steps: max |dw| = " + sci(d) + " (<= 1e-5)");
}

void failure(const std::string& dir) {
  const std::string log = dir + "/resume.log";
  loop::Result plain = loop::FunctionTrainer("resumable", {{"resume_log", log}}, {.num_workers = 2},
                                             run_in(dir, "uninterrupted")).fit();
  check(plain.ok() && plain.checkpoint && plain.checkpoint->index == 5, "uninterrupted run: 6 reports");
  // Rank 1 SIGKILLs itself after step 35: in epoch 3, after the reports of epochs 0, 1 and 2.
  const std::string marker = dir + "/kill-marker";  // the hook kills once, then finds its marker
  ::setenv("MPITRAIN_TEST_KILL_AT_STEP", ("1:35:" + marker).c_str(), 1);
  loop::RunConfig rc = run_in(dir, "killed");
  rc.failure_config.max_failures = 1;
  loop::Result r = loop::FunctionTrainer("resumable", {{"resume_log", log}}, {.num_workers = 2}, rc).fit();
  ::unsetenv("MPITRAIN_TEST_KILL_AT_STEP");
  std::ifstream m(marker);
  std::string said;
  std::getline(m, said);
  check(said == "killed rank 1 after step 35", "rank 1 was SIGKILLed after step 35 (" + said + ")");
  check(r.ok() && r.failures.size() == 1, "relaunched once, then finished (" + (r.ok() ? "ok" : r.error) + ")" +
                                              (r.failures.empty() ? "" : "; failure: " + r.failures[0]));
  std::ifstream in(log);
  std::string line, all;
  while (std::getline(in, line)) all += line + "; ";
  check(all == "attempt 1 resumed from index 2 epoch 2; ",
        "get_checkpoint() after the relaunch: the last reported checkpoint (" + all + ")");
  if (!plain.ok() || !r.ok() || !plain.checkpoint || !r.checkpoint) return;
  const loop::Checkpoint a = plain.checkpoint->load(), b = r.checkpoint->load();
  const double dw = max_diff(a.tensors, b.tensors, "model/"), dopt = max_diff(a.tensors, b.tensors, "optimizer/");
  check(dw == 0 && dopt == 0 && a.tensors.size() == b.tensors.size() &&
            a.tensors.at("prepared_model/steps").item<int64_t>() == 60 &&
            b.tensors.at("prepared_model/steps").item<int64_t>() == 60,
        "final weights equal the uninterrupted run's: max |dw| = " + sci(dw) +
            ", Adam state max diff = " + sci(dopt));
}

std::vector<int64_t> indices(const std::vector<loop::ReportedCheckpoint>& v) {
  std::vector<int64_t> out;
  for (const auto& c : v) out.push_back(c.index);
  return out;
}

std::set<std::string> files_in(const std::string& run_dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(run_dir))
    if (e.path().extension() == ".h5") out.insert(e.path().filename().string());
  return out;
}

std::string text(const std::vector<int64_t>& v) {
  std::string s;
  for (auto i : v) s += (s.empty() ? "" : ",") + std::to_string(i);
  return "[" + s + "]";
}

void retention_case(const std::string& dir, const std::string& name, std::vector<double> scores, int keep,
                    const std::string& attr, const std::string& order, std::vector<int64_t> want) {
  loop::RunConfig rc = run_in(dir, name);
  rc.checkpoint_config = {keep, attr, order};
  loop::Result r = loop::FunctionTrainer("scores", {{"scores", scores}}, {.num_workers = 2}, rc).fit();
  if (!r.ok()) return check(false, name + ": " + r.error);
  std::set<std::string> want_files;
  for (auto i : want) want_files.insert("checkpoint_00000" + std::to_string(i) + ".h5");
  check(indices(r.best_checkpoints) == want && files_in(r.path) == want_files && r.checkpoint &&
            r.checkpoint->index == int64_t(scores.size()) - 1,
        name + ": best_checkpoints " + text(indices(r.best_checkpoints)) + " (want " + text(want) + "), " +
            std::to_string(files_in(r.path).size()) + " files on disk (want " + std::to_string(want_files.size()) + ")");
  if (!r.best_checkpoints.empty()) {
    const loop::Checkpoint c = r.best_checkpoints.front().load();
    check(c.tensors.at("value")[0].item<double>() == scores[size_t(want[0])], name + ": the best file holds its own tensors");
  }
}

void retention(const std::string& dir) {
  // The latest is among the best: exactly num_to_keep stay.
  retention_case(dir, "max_keep2", {1, 3, 2, 5, 4}, 2, "score", "max", {3, 4});
  // The latest is not among the best: the best num_to_keep, and the latest (resume needs it).
  retention_case(dir, "min_keep2", {5, 1, 4, 2, 3}, 2, "score", "min", {1, 3, 4});
  retention_case(dir, "recency_keep3", {9, 8, 7, 6, 5}, 3, "", "max", {4, 3, 2});
  retention_case(dir, "keep_all_min", {3, 1, 2}, -1, "score", "min", {1, 2, 0});
}

}  // namespace

int main(int argc, char** argv) {
  mpitrain::Runtime rt(argc, argv);
  printer = rt.env().rank == 0;
  if (argc != 3) {
    std::cerr << "usage: train_loop_checks parity|failure|retention <dir>\n";
    return 2;
  }
  const std::string what = argv[1], dir = argv[2];
  if (what == "parity") parity(dir);
  else if (what == "failure") failure(dir);
  else if (what == "retention") retention(dir);
  else return 2;
  return failures ? 1 : 0;
}
