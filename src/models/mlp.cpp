#include <torch/torch.h>

#include "mpitrain/errors.hpp"
#include "mpitrain/models/models.hpp"

namespace mpitrain::models {

namespace {
struct Mlp : Net {
  torch::nn::Sequential layers;
  Mlp(int64_t in, const std::vector<int64_t>& hidden, int64_t classes) {
    int64_t width = in;
    for (int64_t h : hidden) {
      layers->push_back(torch::nn::Linear(width, h));
      layers->push_back(torch::nn::ReLU());
      width = h;
    }
    layers->push_back(torch::nn::Linear(width, classes));
    register_module("layers", layers);
  }
  torch::Tensor forward(torch::Tensor x) override { return layers->forward(x.flatten(1)); }
};
}  // namespace

std::shared_ptr<Net> make_mlp(int64_t in_features, std::vector<int64_t> hidden, int64_t classes) {
  return std::make_shared<Mlp>(in_features, hidden, classes);
}

std::shared_ptr<Net> make_model(const std::string& name, int64_t in_channels, int64_t image_size, int64_t classes) {
  if (name == "mlp") return make_mlp(in_channels * image_size * image_size, {1024, 1024}, classes);
  if (name == "lenet") return make_lenet(in_channels, classes);
  if (name == "resnet18") return make_resnet18(in_channels, classes);
  if (name == "resnet18-cifar") return make_resnet18_cifar(in_channels, classes);
  throw ConfigError("unknown model '" + name + "' (expected mlp, lenet, resnet18 or resnet18-cifar)");
}

}  // namespace mpitrain::models
