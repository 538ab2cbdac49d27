#include <torch/torch.h>

#include "mpitrain/models/models.hpp"

namespace mpitrain::models {

namespace {
struct LeNet : Net {
  torch::nn::Conv2d c1{nullptr}, c2{nullptr};
  torch::nn::Linear f1{nullptr}, f2{nullptr}, f3{nullptr};
  LeNet(int64_t in_channels, int64_t classes) {
    c1 = register_module("c1", torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, 6, 5).padding(2)));
    c2 = register_module("c2", torch::nn::Conv2d(torch::nn::Conv2dOptions(6, 16, 5)));
    f1 = register_module("f1", torch::nn::Linear(16 * 5 * 5, 120));
    f2 = register_module("f2", torch::nn::Linear(120, 84));
    f3 = register_module("f3", torch::nn::Linear(84, classes));
  }
  torch::Tensor forward(torch::Tensor x) override {
    x = torch::max_pool2d(torch::relu(c1->forward(x)), 2);
    x = torch::max_pool2d(torch::relu(c2->forward(x)), 2);
    x = torch::adaptive_avg_pool2d(x, {5, 5}).flatten(1);  // 28x28 -> 5x5 already; other sizes too
    return f3->forward(torch::relu(f2->forward(torch::relu(f1->forward(x)))));
  }
};
}  // namespace

std::shared_ptr<Net> make_lenet(int64_t in_channels, int64_t classes) { return std::make_shared<LeNet>(in_channels, classes); }

}  // namespace mpitrain::models
