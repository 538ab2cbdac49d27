// Ray Train's prepare_model / prepare_data_loader for hand-written loops run by FunctionTrainer:
//   auto model = std::make_shared<Net>();
//   torch::optim::Adam adam(model->parameters(), 1e-3);
//   auto ddp = mpitrain::loop::prepare_model(*model, &adam);          // or {"sharded", {...}}, ...
//   auto loader = mpitrain::loop::prepare_data_loader(dataset, 64);   // a DistributedSampler
//   for (int epoch = 0; epoch < n; ++epoch)
//     for (mpitrain::Batch& b : loader) {                              // each pass: the next epoch
//       ddp.zero_grad();
//       torch::nn::functional::cross_entropy(model->forward(b.input), b.target).backward();
//       ddp.step();                                                    // averaged gradients, then the step
//     }
// Valid only inside the training function; what these return must not outlive it.
#pragma once
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <cstdint>
#include <memory>

#include "mpitrain/data/data_loader.hpp"
#include "mpitrain/strategy/registry.hpp"
#include "mpitrain/train/loop/checkpoint.hpp"

namespace mpitrain::loop {

/// A model prepared for data-parallel training: what the loop calls instead of the optimizer.
class PreparedModel {
 public:
  /// Zeros the gradients in place (they may be views into the strategy's buckets).
  void zero_grad();
  /// Collective, after loss.backward(): waits until the gradients are synchronised across ranks,
  /// clips their global norm when `max_grad_norm` > 0, then steps the optimizer (the strategy's
  /// step: for Sharded, each rank its shard, then the parameters are gathered).
  void step(double max_grad_norm = 0);
  /// Before a backward whose gradients should only accumulate locally (Lightning's no_sync); the
  /// next step() then needs a backward with sync = true first.
  void set_sync(bool sync);
  /// Collective: only the gradient synchronisation (for loops that step the optimizer themselves,
  /// or a model prepared without one).
  void synchronize_gradients();
  /// Collective: the model (tensors "model/..."), steps() ("prepared_model/steps") and the optimizer
  /// ("optimizer/..." and state["optimizer"], through the strategy, so sharded state is gathered)
  /// into `checkpoint` (complete on rank 0). Set checkpoint.state's other keys before or after, but
  /// do not replace state as a whole after save().
  void save(Checkpoint& checkpoint);
  /// Collective: restores what save() stored (model, steps() and, when prepared with one, optimizer).
  void load(const Checkpoint& checkpoint);
  Strategy& strategy();
  int64_t steps() const;  ///< optimizer steps taken through step()

  struct State;
  explicit PreparedModel(State* s) : s_(s) {}

 private:
  State* s_;
};

/// Collective: builds the strategy by name (strategy/registry.hpp), moves `module` to this
/// worker's device and sets it up with `optimizer` (may be null: gradient sync only), which
/// broadcasts rank 0's parameters and buffers. ConfigError on every rank for a bad strategy.
PreparedModel prepare_model(torch::nn::Module& module, torch::optim::Optimizer* optimizer = nullptr,
                            const StrategySpec& strategy = {});

/// Batches of this rank's part of `dataset` (PyTorch's DistributedSampler over the world), moved
/// to the worker's device. Iterating it (range-for) is one epoch; each pass starts the next epoch,
/// so the shuffle changes every epoch as set_epoch does in PyTorch.
class PreparedDataLoader {
 public:
  PreparedDataLoader(std::shared_ptr<const Dataset> dataset, int world, int rank, int64_t batch_size, bool shuffle,
                     uint64_t seed, bool drop_last, std::string device);
  class Iterator {
   public:
    Batch& operator*() { return batch_; }
    Iterator& operator++();
    bool operator!=(const Iterator& o) const { return done_ != o.done_; }

   private:
    friend class PreparedDataLoader;
    Iterator(DataLoader::Epoch* e, const std::string* device);
    DataLoader::Epoch* epoch_ = nullptr;
    const std::string* device_ = nullptr;
    Batch batch_;
    bool done_ = true;
  };
  Iterator begin();  ///< starts epoch epoch(), then advances it
  Iterator end() { return Iterator(nullptr, nullptr); }
  /// The epoch the next pass uses (resume: set it to the epoch to continue in).
  void set_epoch(int64_t epoch) { epoch_ = epoch; }
  int64_t epoch() const { return epoch_; }
  int64_t batches_per_epoch() const { return loader_.batches_per_epoch(); }

 private:
  DataLoader loader_;
  std::string device_;
  int64_t epoch_ = 0;
  std::unique_ptr<DataLoader::Epoch> current_;
};

PreparedDataLoader prepare_data_loader(std::shared_ptr<const Dataset> dataset, int64_t batch_size, bool shuffle = true,
                                       uint64_t seed = 0, bool drop_last = false);

}  // namespace mpitrain::loop
