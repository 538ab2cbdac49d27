// ResNet-18 as torchvision builds it (torchvision.models.resnet18): conv1 7x7/2 -> bn1 -> relu ->
// maxpool 3x3/2 -> layer1..4 of BasicBlocks (downsample where the shape changes) -> avgpool -> fc,
// with torchvision's parameter and buffer names (conv1.weight, layer2.0.downsample.0.weight,
// layer1.0.bn1.running_mean, fc.bias, ...) and its initialisation, so its state loads into
// torchvision's model with strict=True and back. in_channels 1 is the seed example's stem
// (Conv2d(1, 64, 7, stride 2, padding 3, bias=False)); 3 is torchvision's.
#include <torch/torch.h>

#include "mpitrain/models/models.hpp"

namespace mpitrain::models {

namespace {
namespace nn = torch::nn;

nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, k).stride(stride).padding(pad).bias(false));
}

struct BasicBlock : nn::Module {
  nn::Conv2d conv1{nullptr}, conv2{nullptr};
  nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
  nn::Sequential downsample{nullptr};
  BasicBlock(int64_t in, int64_t out, int64_t stride) {
    conv1 = register_module("conv1", conv(in, out, 3, stride, 1));
    bn1 = register_module("bn1", nn::BatchNorm2d(out));
    conv2 = register_module("conv2", conv(out, out, 3, 1, 1));
    bn2 = register_module("bn2", nn::BatchNorm2d(out));
    if (stride != 1 || in != out)
      downsample = register_module("downsample", nn::Sequential(conv(in, out, 1, stride, 0), nn::BatchNorm2d(out)));
  }
  // In place where torchvision is (relu_, out += identity): no extra activation buffers, and
  // autograd-safe (BatchNorm's backward needs its input, not its output).
  torch::Tensor forward(torch::Tensor x) {
    auto y = bn1->forward(conv1->forward(x)).relu_();
    y = bn2->forward(conv2->forward(y));
    y += downsample ? downsample->forward(x) : x;
    return y.relu_();
  }
};
TORCH_MODULE_IMPL(Block, BasicBlock);

struct ResNet18 : Net {
  nn::Conv2d conv1{nullptr};
  nn::BatchNorm2d bn1{nullptr};
  nn::Sequential layer1{nullptr}, layer2{nullptr}, layer3{nullptr}, layer4{nullptr};
  nn::Linear fc{nullptr};
  ResNet18(int64_t in_channels, int64_t classes) {
    conv1 = register_module("conv1", conv(in_channels, 64, 7, 2, 3));
    bn1 = register_module("bn1", nn::BatchNorm2d(64));
    layer1 = register_module("layer1", nn::Sequential(Block(64, 64, 1), Block(64, 64, 1)));
    layer2 = register_module("layer2", nn::Sequential(Block(64, 128, 2), Block(128, 128, 1)));
    layer3 = register_module("layer3", nn::Sequential(Block(128, 256, 2), Block(256, 256, 1)));
    layer4 = register_module("layer4", nn::Sequential(Block(256, 512, 2), Block(512, 512, 1)));
    fc = register_module("fc", nn::Linear(512, classes));
    // torchvision's initialisation: Kaiming-normal (fan_out, relu) convolutions, BN weight 1 bias 0.
    torch::NoGradGuard no_grad;
    for (auto& m : modules(false)) {
      if (auto* c = m->as<nn::Conv2d>()) nn::init::kaiming_normal_(c->weight, 0, torch::kFanOut, torch::kReLU);
      if (auto* b = m->as<nn::BatchNorm2d>()) {
        nn::init::ones_(b->weight);
        nn::init::zeros_(b->bias);
      }
    }
  }
  torch::Tensor forward(torch::Tensor x) override {
    x = bn1->forward(conv1->forward(x)).relu_();
    x = torch::max_pool2d(x, 3, 2, 1);
    x = layer4->forward(layer3->forward(layer2->forward(layer1->forward(x))));
    return fc->forward(torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1));
  }
};
}  // namespace

std::shared_ptr<Net> make_resnet18(int64_t in_channels, int64_t classes) {
  return std::make_shared<ResNet18>(in_channels, classes);
}

}  // namespace mpitrain::models
