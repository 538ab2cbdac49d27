// Module: what a user writes, the LibTorch counterpart of a LightningModule (DESIGN §1).
#pragma once
#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <typeindex>

#include "mpitrain/data/dataset.hpp"
#include "mpitrain/train/lr_scheduler.hpp"

namespace mpitrain {

using Config = nlohmann::json;  ///< hyperparameters; JSON-backed (DESIGN §4)

struct LogOptions {
  bool on_step = false;   ///< also report every step's value
  bool on_epoch = true;   ///< aggregate over the epoch (mean, weighted by batch size)
  bool prog_bar = false;  ///< show in the progress line
  bool sync_dist = true;  ///< aggregate across ranks (sum and count allreduced)
};

struct Optimizers {
  std::shared_ptr<torch::optim::Optimizer> optimizer;
  std::shared_ptr<LRScheduler> scheduler;  ///< optional
};

/// Datasets of a Module; the Trainer wraps each in a DistributedSampler + DataLoader.
struct DataLoaders {
  std::shared_ptr<Dataset> train, val, test;
  int64_t batch_size = 32;  ///< per rank
  bool shuffle = true;      ///< training set only
};

class MetricSink;  // where log() goes (the Trainer's metric aggregator)

class Module : public torch::nn::Module {
 public:
  /// Returns the loss (a scalar) of one training batch.
  virtual torch::Tensor training_step(const Batch& batch, int64_t batch_idx) = 0;
  virtual void validation_step(const Batch& batch, int64_t batch_idx) {}
  virtual void test_step(const Batch& batch, int64_t batch_idx) {}
  virtual Optimizers configure_optimizers() = 0;
  virtual DataLoaders dataloaders() = 0;

  // Hooks, as Lightning names them.
  virtual void on_fit_start() {}
  virtual void on_fit_end() {}
  virtual void on_train_epoch_start(int64_t epoch) {}
  virtual void on_train_epoch_end(int64_t epoch) {}
  virtual void on_validation_epoch_end(int64_t epoch) {}

  /// Records a metric (see LogOptions); names must be the same on every rank.
  void log(const std::string& name, double value, LogOptions options = {}, int64_t batch_size = 1);
  void log(const std::string& name, const torch::Tensor& value, LogOptions options = {}, int64_t batch_size = 1);

  /// Rank and world size of this process within its job (1 process outside training).
  int rank() const { return rank_; }
  int world_size() const { return world_size_; }

 private:
  friend class Trainer;
  MetricSink* sink_ = nullptr;
  int rank_ = 0, world_size_ = 1;
};

/// Module factories by name: spawned workers rebuild the module from its name and Config.
using ModuleFactory = std::function<std::shared_ptr<Module>(const Config&)>;
bool register_module(const std::string& name, std::type_index type, ModuleFactory factory);
/// ConfigError naming the registered modules if `name` is unknown.
std::shared_ptr<Module> create_module(const std::string& name, const Config& config);
/// The name a type was registered under (ConfigError if it was not).
std::string registered_module_name(std::type_index type);

}  // namespace mpitrain

/// MPITRAIN_REGISTER_MODULE(Classifier): Classifier must be constructible from a Config.
#define MPITRAIN_REGISTER_MODULE(Type)                                                             \
  static const bool mpitrain_module_registered_##Type = ::mpitrain::register_module(                \
      #Type, std::type_index(typeid(Type)),                                                         \
      [](const ::mpitrain::Config& c) -> std::shared_ptr<::mpitrain::Module> { return std::make_shared<Type>(c); })
