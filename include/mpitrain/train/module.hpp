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
#include "mpitrain/train/metrics.hpp"

namespace mpitrain {

using Config = nlohmann::json;  ///< hyperparameters; JSON-backed (DESIGN §4)

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

namespace detail {
struct ModuleAccess;  // the fit loop binds rank, world size and the metric sink
}

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
  friend struct detail::ModuleAccess;
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

#define MPITRAIN_MODULE_CONCAT_INNER(a, b) a##b
#define MPITRAIN_MODULE_CONCAT(a, b) MPITRAIN_MODULE_CONCAT_INNER(a, b)
#define MPITRAIN_REGISTER_MODULE_SELECT(_1, _2, NAME, ...) NAME
#define MPITRAIN_REGISTER_MODULE_NAMED(Type, name)                                                        \
  static const bool MPITRAIN_MODULE_CONCAT(mpitrain_module_registered_, __COUNTER__) =                  \
      ::mpitrain::register_module(name, std::type_index(typeid(Type)),                                 \
                                  [](const ::mpitrain::Config& c) -> std::shared_ptr<::mpitrain::Module> { \
                                    return std::make_shared<Type>(c);                                  \
                                  })
#define MPITRAIN_REGISTER_MODULE_UNNAMED(Type) MPITRAIN_REGISTER_MODULE_NAMED(Type, #Type)
/// MPITRAIN_REGISTER_MODULE(Classifier) registers it as "Classifier";
/// MPITRAIN_REGISTER_MODULE(ns::Classifier, "classifier") under a name of your choice (any
/// qualified type). The type must be constructible from a Config. At namespace scope.
#define MPITRAIN_REGISTER_MODULE(...) \
  MPITRAIN_REGISTER_MODULE_SELECT(__VA_ARGS__, MPITRAIN_REGISTER_MODULE_NAMED, MPITRAIN_REGISTER_MODULE_UNNAMED, )(__VA_ARGS__)
