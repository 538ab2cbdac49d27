// Placement (TrainerOptions::memory_format): channels-last relayout in place (the same tensors,
// so an optimizer's references stay valid), what it leaves alone (1-D/2-D tensors, batches that
// are not images), the same forward results, and checkpoints independent of the layout: written
// from a channels-last model, read into a contiguous one and back, with Adam's state, bit for bit.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "mpitrain/errors.hpp"
#include "mpitrain/train/loop/checkpoint.hpp"
#include "mpitrain/train/placement.hpp"
#include "mpitrain/train/trainer.hpp"
#include "../../support/temp_dir.hpp"

namespace mpitrain {
namespace {

constexpr auto kCL = c10::MemoryFormat::ChannelsLast;

struct ConvNetImpl : torch::nn::Module {
  ConvNetImpl() {
    conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 8, 3).padding(1)));
    bn = register_module("bn", torch::nn::BatchNorm2d(8));
    fc = register_module("fc", torch::nn::Linear(8, 4));
    register_buffer("mask", torch::rand({2, 3, 4, 5}));  // a 4-D buffer relayouts too
  }
  torch::Tensor forward(torch::Tensor x) {
    x = torch::relu(bn->forward(conv->forward(x)));
    return fc->forward(torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1));
  }
  torch::nn::Conv2d conv{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
  torch::nn::Linear fc{nullptr};
};
TORCH_MODULE(ConvNet);

const Placement kChannelsLast{torch::kCPU, kCL};

TEST(Placement, ParsesTheTwoFormatsAndNamesAnyOther) {
  EXPECT_EQ(parse_memory_format("contiguous"), c10::MemoryFormat::Contiguous);
  EXPECT_EQ(parse_memory_format("channels_last"), kCL);
  try {
    parse_memory_format("nhwc");
    FAIL() << "no error for an unknown memory format";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "memory_format must be \"contiguous\" or \"channels_last\" (got \"nhwc\")");
  }
  EXPECT_THROW(TrainerOptions::from_json({{"memory_format", "NHWC"}}), ConfigError);
  EXPECT_EQ(TrainerOptions::from_json({{"memory_format", "channels_last"}}).memory_format, "channels_last");
}

TEST(Placement, RelayoutsFourDimensionalTensorsInPlaceKeepingTheirIdentityAndValues) {
  torch::manual_seed(0);
  ConvNet net;
  const torch::Tensor w = net->conv->weight, mask = net->named_buffers()["mask"];
  const torch::Tensor w_before = w.detach().clone(), mask_before = mask.clone();
  const void* bias_storage = net->conv->bias.data_ptr();
  const auto* w_impl = w.unsafeGetTensorImpl();
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(1e-2));

  EXPECT_EQ(kChannelsLast.apply(*net), 2u) << "conv.weight and the mask buffer";
  EXPECT_EQ(net->conv->weight.unsafeGetTensorImpl(), w_impl) << "the optimizer's tensor must stay the module's";
  EXPECT_TRUE(net->conv->weight.is_contiguous(kCL));
  EXPECT_FALSE(net->conv->weight.is_contiguous());
  EXPECT_TRUE(net->named_buffers()["mask"].is_contiguous(kCL));
  EXPECT_TRUE(torch::equal(net->conv->weight, w_before));
  EXPECT_TRUE(torch::equal(net->named_buffers()["mask"], mask_before));
  EXPECT_EQ(net->conv->bias.data_ptr(), bias_storage) << "1-D tensors are left alone";
  EXPECT_TRUE(net->fc->weight.is_contiguous());
  EXPECT_TRUE(opt.param_groups()[0].params()[0].is_same(net->conv->weight));
  // One input channel: contiguous in both formats, yet it must get NHWC strides so that oneDNN
  // runs the convolution channels-last (no reorder at the next layer).
  torch::nn::Conv2d stem(torch::nn::Conv2dOptions(1, 4, 3));
  EXPECT_TRUE(stem->weight.is_contiguous(kCL));
  EXPECT_EQ(kChannelsLast.apply(*stem), 1u);
  EXPECT_EQ(stem->weight.suggest_memory_format(), kCL);
  EXPECT_EQ(stem->weight.strides(), (std::vector<int64_t>{9, 1, 3, 1}));
  EXPECT_EQ(kChannelsLast.apply(*stem), 0u);
  EXPECT_EQ(kChannelsLast.apply(torch::zeros({5, 1, 6, 6})).suggest_memory_format(), kCL);
  const torch::Tensor n111 = kChannelsLast.apply(torch::zeros({5, 1, 1, 1}));  // NHWC and NCHW strides coincide
  EXPECT_TRUE(kChannelsLast.apply(n111).is_same(n111)) << "a second pass must not copy again";
  const Placement contiguous{torch::kCPU, c10::MemoryFormat::Contiguous};
  EXPECT_EQ(contiguous.apply(*net), 0u) << "the default leaves layouts as they are";
  EXPECT_TRUE(net->conv->weight.is_contiguous(kCL));

  const void* again = net->conv->weight.data_ptr();
  EXPECT_EQ(kChannelsLast.apply(*net), 0u);
  EXPECT_EQ(net->conv->weight.data_ptr(), again) << "already channels-last: no copy";
}

TEST(Placement, RelayoutsImageBatchesOnlyAndForwardMatchesContiguous) {
  torch::manual_seed(1);
  ConvNet a, b;
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < a->parameters().size(); ++i) b->parameters()[i].copy_(a->parameters()[i]);
  kChannelsLast.apply(*b);
  const torch::Tensor x = torch::randn({6, 3, 9, 9}), y = torch::randint(0, 4, {6});
  const Batch batch = kChannelsLast.apply(Batch{x, y});
  EXPECT_TRUE(batch.input.is_contiguous(kCL));
  EXPECT_FALSE(batch.input.is_contiguous());
  EXPECT_TRUE(batch.target.is_same(y)) << "a 1-D target is untouched";
  const torch::Tensor flat = torch::randn({6, 27});
  EXPECT_TRUE(kChannelsLast.apply(flat).is_same(flat));
  a->eval();
  b->eval();
  EXPECT_LE((a->forward(x) - b->forward(batch.input)).abs().max().item<double>(), 1e-5);
}

// Adam steps on a channels-last model; its checkpoint loads into a contiguous model and a fresh
// channels-last one: the same values bit for bit, each in its own layout, and both continue alike.
TEST(Placement, CheckpointsAreLayoutIndependent) {
  test::TempDir dir;
  torch::manual_seed(2);
  ConvNet cl;
  kChannelsLast.apply(*cl);
  torch::optim::Adam opt(cl->parameters(), torch::optim::AdamOptions(1e-2));
  const torch::Tensor x = kChannelsLast.apply(torch::randn({4, 3, 6, 6})), y = torch::randint(0, 4, {4});
  auto step = [&](ConvNet& net, torch::optim::Optimizer& o) {
    o.zero_grad();
    torch::nn::functional::cross_entropy(net->forward(x), y).backward();
    o.step();
  };
  for (int i = 0; i < 3; ++i) step(cl, opt);
  loop::Checkpoint ck;
  ck.add_module("model", *cl);
  ck.add_optimizer("optimizer", opt, *cl);
  const std::string path = dir.file("cl.h5");
  ck.save(path);
  const loop::Checkpoint back = loop::Checkpoint::load(path);

  for (bool channels_last : {false, true}) {
    torch::manual_seed(99);  // other initial weights: everything must come from the file
    ConvNet net;
    if (channels_last) kChannelsLast.apply(*net);
    torch::optim::Adam o(net->parameters(), torch::optim::AdamOptions(1e-2));
    back.load_module("model", *net);
    back.load_optimizer("optimizer", o, *net);
    EXPECT_EQ(net->conv->weight.is_contiguous(kCL), channels_last) << "loading keeps the destination's layout";
    EXPECT_TRUE(torch::equal(net->conv->weight, cl->conv->weight));
    const auto& st = static_cast<torch::optim::AdamParamState&>(*o.state().at(c10::guts::to_string(
        net->conv->weight.unsafeGetTensorImpl())));
    EXPECT_EQ(st.exp_avg().strides(), net->conv->weight.strides()) << "Adam's moments follow their parameter's layout";
    EXPECT_EQ(st.exp_avg().is_contiguous(kCL), channels_last);
    EXPECT_TRUE(torch::equal(st.exp_avg_sq(), static_cast<torch::optim::AdamParamState&>(*opt.state().at(
                                                  c10::guts::to_string(cl->conv->weight.unsafeGetTensorImpl())))
                                                  .exp_avg_sq()));
    if (!channels_last) continue;
    // Same layout, same state: the next step is bit-identical to the uninterrupted run's.
    step(net, o);
    step(cl, opt);
    EXPECT_TRUE(torch::equal(net->conv->weight, cl->conv->weight));
  }
}

}  // namespace
}  // namespace mpitrain
