// ResNet-18 for small images (CIFAR-style): a 3x3 stride-1 stem and no max-pool, so layer1 sees
// 28x28 positions (about 16x torchvision's convolution work at this size). Its own parameter names.
#include <torch/torch.h>

#include "mpitrain/models/models.hpp"

namespace mpitrain::models {

namespace {
namespace nn = torch::nn;

nn::Conv2d conv3x3(int64_t in, int64_t out, int64_t stride) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false));
}

struct BasicBlock : nn::Module {
  nn::Conv2d conv1{nullptr}, conv2{nullptr};
  nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
  nn::Sequential shortcut;
  BasicBlock(int64_t in, int64_t out, int64_t stride) {
    conv1 = register_module("conv1", conv3x3(in, out, stride));
    bn1 = register_module("bn1", nn::BatchNorm2d(out));
    conv2 = register_module("conv2", conv3x3(out, out, 1));
    bn2 = register_module("bn2", nn::BatchNorm2d(out));
    if (stride != 1 || in != out) {
      shortcut->push_back(nn::Conv2d(nn::Conv2dOptions(in, out, 1).stride(stride).bias(false)));
      shortcut->push_back(nn::BatchNorm2d(out));
    }
    register_module("shortcut", shortcut);
  }
  torch::Tensor forward(torch::Tensor x) {
    auto y = torch::relu(bn1->forward(conv1->forward(x)));
    y = bn2->forward(conv2->forward(y));
    return torch::relu(y + (shortcut->size() ? shortcut->forward(x) : x));
  }
};

struct ResNet18 : Net {
  nn::Conv2d stem{nullptr};
  nn::BatchNorm2d bn{nullptr};
  nn::Sequential stages;
  nn::Linear fc{nullptr};
  ResNet18(int64_t in_channels, int64_t classes) {
    stem = register_module("stem", conv3x3(in_channels, 64, 1));  // 3x3 stem: small images keep their size
    bn = register_module("bn", nn::BatchNorm2d(64));
    int64_t in = 64;
    for (auto [out, stride] : {std::pair{64, 1}, std::pair{128, 2}, std::pair{256, 2}, std::pair{512, 2}}) {
      stages->push_back(BasicBlock(in, out, stride));
      stages->push_back(BasicBlock(out, out, 1));
      in = out;
    }
    register_module("stages", stages);
    fc = register_module("fc", nn::Linear(512, classes));
  }
  torch::Tensor forward(torch::Tensor x) override {
    x = torch::relu(bn->forward(stem->forward(x)));
    x = stages->forward(x);
    return fc->forward(torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1));
  }
};
}  // namespace

std::shared_ptr<Net> make_resnet18_cifar(int64_t in_channels, int64_t classes) {
  return std::make_shared<ResNet18>(in_channels, classes);
}

}  // namespace mpitrain::models
