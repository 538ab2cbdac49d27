// The image classifier behind mpitrain-train and the examples: a built-in model on a dataset
// named in the Config. Registered as "Classifier".
//   config keys: model (mlp|lenet|resnet18), dataset (fashion-mnist|synthetic|hdf5:PATH),
//   data_dir, batch_size, lr, optimizer (sgd|adam|adamw), momentum, weight_decay,
//   scheduler (none|step|cosine|one-cycle), total_steps (for the schedule), layer_1 and layer_2
//   (the MLP's hidden sizes, default 1024 each); Fashion-MNIST: val_split (training images held
//   out for validation, seeded by data_seed; default 5000, 0: no validation), normalize_mean and
//   normalize_std (default the training set's 0.2860 / 0.3530; the seed example uses 0.5 / 0.5);
//   init_weights (an HDF5 file whose /model holds the net's tensors by name, strict)
#pragma once
#include "mpitrain/models/models.hpp"
#include "mpitrain/train/module.hpp"

namespace mpitrain::apps {

class Classifier : public Module {
 public:
  explicit Classifier(const Config& config);  // validates the config; ConfigError names the bad key
  torch::Tensor training_step(const Batch& batch, int64_t batch_idx) override;
  void validation_step(const Batch& batch, int64_t batch_idx) override;
  void test_step(const Batch& batch, int64_t batch_idx) override;
  Optimizers configure_optimizers() override;
  DataLoaders dataloaders() override;
  /// The network itself: logits = net()->forward(images).
  const std::shared_ptr<models::Net>& net() const { return net_; }

 private:
  void evaluate(const Batch& batch, const std::string& prefix);
  Config cfg_;
  std::shared_ptr<models::Net> net_;
};

/// Checks the config without building anything (for the CLI, before any spawn).
void validate_classifier_config(const Config& config);

}  // namespace mpitrain::apps
