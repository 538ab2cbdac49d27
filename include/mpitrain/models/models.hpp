// Built-in example models (DESIGN §2: used by apps and examples, never by the library core).
#pragma once
#include <torch/nn/module.h>

#include <memory>
#include <string>

namespace mpitrain::models {

/// An image classifier: [B, C, H, W] -> logits [B, classes].
struct Net : torch::nn::Module {
  virtual torch::Tensor forward(torch::Tensor x) = 0;
};

/// Multilayer perceptron on flattened inputs: in -> hidden... -> classes, ReLU between.
std::shared_ptr<Net> make_mlp(int64_t in_features, std::vector<int64_t> hidden, int64_t classes);
/// LeNet-5 (padded first convolution, so 28x28 inputs work).
std::shared_ptr<Net> make_lenet(int64_t in_channels, int64_t classes);
/// torchvision's ResNet-18 (its architecture, parameter names and initialisation); a 1-channel
/// input gets the seed example's stem, Conv2d(1, 64, 7, stride 2, padding 3, bias=False).
std::shared_ptr<Net> make_resnet18(int64_t in_channels, int64_t classes);
/// ResNet-18 with a 3x3 stride-1 stem and no max-pool, for 28x28 / 32x32 inputs (its own names).
std::shared_ptr<Net> make_resnet18_cifar(int64_t in_channels, int64_t classes);

/// "mlp" | "lenet" | "resnet18" | "resnet18-cifar"; ConfigError naming the choices otherwise.
std::shared_ptr<Net> make_model(const std::string& name, int64_t in_channels, int64_t image_size, int64_t classes);

}  // namespace mpitrain::models
