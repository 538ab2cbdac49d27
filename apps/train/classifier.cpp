#include "classifier.hpp"

#include <cmath>
#include <filesystem>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "mpitrain/data/fashion_mnist.hpp"
#include "mpitrain/data/hdf5_dataset.hpp"
#include "mpitrain/data/synthetic.hpp"
#include "hdf5_io/tensor_io.hpp"
#include "mpitrain/errors.hpp"
#include "mpitrain/strategy/optim/adam.hpp"

namespace mpitrain::apps {

void validate_classifier_config(const Config& c) {
  const std::string model = c.value("model", "mlp"), dataset = c.value("dataset", "fashion-mnist");
  const std::string opt = c.value("optimizer", "sgd"), sched = c.value("scheduler", "none");
  if (model != "mlp" && model != "lenet" && model != "resnet18" && model != "resnet18-cifar")
    throw ConfigError("unknown model '" + model + "' (expected mlp, lenet, resnet18 or resnet18-cifar)");
  if (opt != "sgd" && opt != "adam" && opt != "adamw")
    throw ConfigError("unknown optimizer '" + opt + "' (expected sgd, adam or adamw)");
  if (sched != "none" && sched != "step" && sched != "cosine" && sched != "one-cycle")
    throw ConfigError("unknown scheduler '" + sched + "' (expected none, step, cosine or one-cycle)");
  const int64_t batch = c.value("batch_size", int64_t(64));
  if (batch < 1 || batch > (int64_t(1) << 31) - 1)
    throw ConfigError("batch size must be at least 1" + std::string(batch < 1 ? "" : " and below 2^31") + " (got " +
                      std::to_string(batch) + ")");
  for (const char* k : {"layer_1", "layer_2"})
    if (c.value(k, int64_t(1024)) < 1) throw ConfigError(std::string(k) + " (MLP hidden size) must be at least 1 (got " + std::to_string(c.value(k, int64_t(1024))) + ")");
  const int64_t val_split = c.value("val_split", int64_t(5000));
  if (val_split < 0 || val_split >= 60000)
    throw ConfigError("val_split must be in [0, 60000) training images (got " + std::to_string(val_split) + ")");
  if (!(c.value("normalize_std", 0.353) > 0)) throw ConfigError("normalize_std must be positive");
  const double lr = c.value("lr", 0.05);
  if (!(lr > 0) || !std::isfinite(lr)) throw ConfigError("learning rate must be positive and finite (got " + std::to_string(lr) + ")");
  for (const char* k : {"momentum", "weight_decay"})
    if (!std::isfinite(c.value(k, 0.0))) throw ConfigError(std::string(k) + " must be finite (got " + std::to_string(c.value(k, 0.0)) + ")");
  if (dataset == "fashion-mnist") {
    const std::string dir = c.value("data_dir", std::string(kFashionMnistDir));
    for (const char* f : {"train-images-idx3-ubyte", "t10k-images-idx3-ubyte"})
      if (!std::filesystem::exists(dir + "/" + f + ".gz") && !std::filesystem::exists(dir + "/" + f))
        throw ConfigError("dataset file " + dir + "/" + f + ".gz not found (apt-get install dataset-fashion-mnist or set --data-dir)");
  } else if (dataset.rfind("hdf5:", 0) == 0) {
    const std::string path = dataset.substr(5);
    if (!std::filesystem::exists(path)) throw ConfigError("dataset file " + path + " not found");
    if (!hdf5_has_dataset(path, "X") || !hdf5_has_dataset(path, "y"))
      throw ConfigError("dataset file " + path + " needs datasets X (images) and y (labels)");
  } else if (dataset != "synthetic") {
    throw ConfigError("unknown dataset '" + dataset + "' (expected fashion-mnist, synthetic or hdf5:PATH)");
  }
}

namespace {
// init_weights: an HDF5 file whose /model holds every parameter and buffer of the net under the
// net's own names (torchvision's for resnet18), as h5py writes a state_dict:
// f["model/conv1.weight"] = t.numpy(). Strict, as load_state_dict(strict=True).
void load_init_weights_from(torch::nn::Module& net, const std::string& path) {
  H5::H5File f = hdf5_io::open_file(path);
  if (!f.nameExists("model")) throw ConfigError("init_weights " + path + " has no group /model");
  H5::Group g = f.openGroup("model");
  torch::NoGradGuard no_grad;
  size_t expected = 0;
  auto load = [&](const std::string& name, at::Tensor t) {
    ++expected;
    if (!g.nameExists(name)) throw ConfigError("init_weights " + path + " has no dataset /model/" + name);
    const at::Tensor v = hdf5_io::read_tensor(g, name);
    if (v.sizes() != t.sizes())
      throw ConfigError("init_weights " + path + ": /model/" + name + " has shape " + c10::str(v.sizes()) +
                        ", the model's is " + c10::str(t.sizes()));
    t.copy_(v.to(t.scalar_type()));
  };
  for (const auto& p : net.named_parameters()) load(p.key(), p.value());
  for (const auto& b : net.named_buffers()) load(b.key(), b.value());
  if (g.getNumObjs() != expected)
    throw ConfigError("init_weights " + path + ": /model holds " + std::to_string(g.getNumObjs()) +
                      " datasets, the model has " + std::to_string(expected) + " tensors");
}

// A file that is not HDF5, or whose datasets cannot be read, is bad input like a missing one.
void load_init_weights(torch::nn::Module& net, const std::string& path) {
  if (!std::filesystem::exists(path)) throw ConfigError("init_weights " + path + " does not exist");
  try {
    load_init_weights_from(net, path);
  } catch (const hdf5_io::CheckpointError& e) {
    throw ConfigError("init_weights: " + std::string(e.what()));
  } catch (const H5::Exception& e) {
    throw ConfigError("init_weights " + path + ": " + e.getDetailMsg());
  }
}
}  // namespace

Classifier::Classifier(const Config& config) : cfg_(config) {
  validate_classifier_config(cfg_);
  const std::string model = cfg_.value("model", "mlp");
  // The MLP's hidden sizes come from the config (sweeps tune them: layer_1, layer_2).
  net_ = register_module("net", model == "mlp" ? models::make_mlp(28 * 28, {cfg_.value("layer_1", int64_t(1024)),
                                                                            cfg_.value("layer_2", int64_t(1024))}, 10)
                                               : models::make_model(model, 1, 28, 10));
  if (const std::string w = cfg_.value("init_weights", std::string()); !w.empty()) load_init_weights(*net_, w);
}

torch::Tensor Classifier::training_step(const Batch& batch, int64_t) {
  return torch::nn::functional::cross_entropy(net_->forward(batch.input), batch.target);
}

void Classifier::evaluate(const Batch& batch, const std::string& prefix) {
  torch::Tensor logits = net_->forward(batch.input);
  const double loss = torch::nn::functional::cross_entropy(logits, batch.target).item<double>();
  const double acc = logits.argmax(1).eq(batch.target).to(torch::kDouble).mean().item<double>();
  log(prefix + "_loss", loss, {.prog_bar = true}, batch.size());
  log(prefix + "_acc", acc, {.prog_bar = true, .mode = MetricMode::Max}, batch.size());
}

void Classifier::validation_step(const Batch& batch, int64_t) { evaluate(batch, "val"); }
void Classifier::test_step(const Batch& batch, int64_t) { evaluate(batch, "test"); }

Optimizers Classifier::configure_optimizers() {
  const std::string name = cfg_.value("optimizer", "sgd");
  const double lr = cfg_.value("lr", 0.05), wd = cfg_.value("weight_decay", 0.0);
  Optimizers o;
  if (name == "sgd")
    o.optimizer = std::make_shared<torch::optim::SGD>(
        parameters(), torch::optim::SGDOptions(lr).momentum(cfg_.value("momentum", 0.9)).weight_decay(wd));
  else if (name == "adam")
    o.optimizer = std::make_shared<optim::Adam>(parameters(), torch::optim::AdamOptions(lr).weight_decay(wd));
  else
    o.optimizer = std::make_shared<optim::AdamW>(parameters(), torch::optim::AdamWOptions(lr).weight_decay(wd));
  const std::string sched = cfg_.value("scheduler", "none");
  const int64_t total = std::max<int64_t>(2, cfg_.value("total_steps", 1000));
  if (sched == "step") o.scheduler = make_step_lr(*o.optimizer, std::max<int64_t>(1, total / 3), 0.1);
  if (sched == "cosine") o.scheduler = make_cosine_lr(*o.optimizer, total);
  if (sched == "one-cycle") o.scheduler = make_one_cycle_lr(*o.optimizer, lr, total);
  return o;
}

DataLoaders Classifier::dataloaders() {
  DataLoaders d;
  d.batch_size = cfg_.value("batch_size", 64);
  const std::string dataset = cfg_.value("dataset", "fashion-mnist");
  if (dataset == "synthetic") {
    // One draw (one teacher) split into train and validation, so validation is learnable too.
    const int64_t n = cfg_.value("synthetic_size", 6000), n_val = 1000;
    auto all = make_synthetic_classification(n + n_val, {1, 28, 28}, 10, cfg_.value("data_seed", 1234));
    d.train = std::make_shared<TensorDataset>(all->input().narrow(0, 0, n), all->target().narrow(0, 0, n), "synthetic/train");
    d.val = std::make_shared<TensorDataset>(all->input().narrow(0, n, n_val), all->target().narrow(0, n, n_val), "synthetic/val");
    d.test = d.val;
  } else if (dataset.rfind("hdf5:", 0) == 0) {
    // X: [N, 28, 28] or [N, 1, 28, 28] images (uint8 0..255 are scaled to 0..1), y: [N] labels 0..9;
    // optional X_test / y_test for validation and test. Each rank reads only its own rows.
    const std::string path = dataset.substr(5);
    auto shard = [&](const std::string& x, const std::string& y) {
      auto raw = load_hdf5_shard(path, rank(), world_size(), x, y);
      at::Tensor images = raw->input().to(at::kFloat);
      if (raw->input().scalar_type() == at::kByte) images.div_(255.0);
      if (images.dim() == 3) images = images.unsqueeze(1);
      if (images.dim() != 4 || images.size(1) != 1 || images.size(2) != 28 || images.size(3) != 28)
        throw ConfigError("dataset file " + path + ": " + x + " must hold 28x28 single-channel images, got rows of shape " +
                          c10::str(raw->input().sizes().slice(1)));
      at::Tensor labels = raw->target().to(at::kLong);
      if (labels.numel() > 0 && (labels.min().item<int64_t>() < 0 || labels.max().item<int64_t>() >= 10))
        throw ConfigError("dataset file " + path + ": " + y + " holds labels from " + std::to_string(labels.min().item<int64_t>()) +
                          " to " + std::to_string(labels.max().item<int64_t>()) + ", the model has classes 0..9");
      return std::make_shared<RankShardDataset>(images.contiguous(), labels, raw->name());
    };
    d.train = shard("X", "y");
    if (hdf5_has_dataset(path, "X_test")) d.val = d.test = shard("X_test", "y_test");
  } else {
    const std::string dir = cfg_.value("data_dir", std::string(kFashionMnistDir));
    const double mean = cfg_.value("normalize_mean", 0.2860), std = cfg_.value("normalize_std", 0.3530);
    auto train = load_fashion_mnist(dir, true, mean, std);
    // Validation holds out val_split training images (seeded, the same on every rank); the test
    // split is for test() only.
    const int64_t n_val = cfg_.value("val_split", int64_t(5000)), n = train->size();
    if (n_val > 0) {
      auto gen = at::make_generator<at::CPUGeneratorImpl>(uint64_t(cfg_.value("data_seed", int64_t(1234))));
      const at::Tensor perm = at::randperm(n, gen, at::TensorOptions(at::kLong));
      auto subset = [&](int64_t from, int64_t count, const char* name) {
        const at::Tensor idx = perm.narrow(0, from, count);
        return std::make_shared<TensorDataset>(train->input().index_select(0, idx), train->target().index_select(0, idx),
                                               std::string("fashion-mnist/") + name);
      };
      d.val = subset(0, n_val, "val");
      d.train = subset(n_val, n - n_val, "train");
    } else {
      d.train = train;
    }
    d.test = load_fashion_mnist(dir, false, mean, std);
  }
  return d;
}

MPITRAIN_REGISTER_MODULE(Classifier);

}  // namespace mpitrain::apps
