#include "mpitrain/train/placement.hpp"

#include <torch/torch.h>

#include "mpitrain/errors.hpp"

namespace mpitrain {

c10::MemoryFormat parse_memory_format(const std::string& name) {
  if (name == "contiguous") return c10::MemoryFormat::Contiguous;
  if (name == "channels_last") return c10::MemoryFormat::ChannelsLast;
  throw ConfigError("memory_format must be \"contiguous\" or \"channels_last\" (got \"" + name + "\")");
}

namespace {
// Channels-last is defined for 4-D tensors only (NCHW -> NHWC); everything else stays as it is.
// The test is the exact strides, not is_contiguous(ChannelsLast): a one-channel tensor (the
// seed's 1-channel stem weight, a 1-channel image batch) is contiguous in both formats and keeps
// NCHW strides under .contiguous(ChannelsLast), so oneDNN would run that convolution NCHW and
// reorder its output at the next layer.
bool needs_relayout(const torch::Tensor& t, c10::MemoryFormat f) {
  if (f == c10::MemoryFormat::Contiguous) return false;  // the default: tensors as LibTorch made them
  return t.defined() && t.dim() == 4 && t.strides() != c10::IntArrayRef(c10::get_channels_last_strides_2d(t.sizes()));
}
torch::Tensor relaid(const torch::Tensor& t, c10::MemoryFormat f) {
  return torch::empty_like(t, t.options(), f).copy_(t);  // exactly f's strides (contiguous(f) may keep t's)
}
}  // namespace

size_t Placement::apply(torch::nn::Module& module) const {
  if (!device.is_cpu()) module.to(device);
  torch::NoGradGuard no_grad;
  size_t n = 0;
  // set_data keeps each tensor's identity (optimizers and strategies hold them) and swaps its storage.
  auto relayout = [&](torch::Tensor& t) {
    if (!needs_relayout(t, format)) return;
    t.set_data(relaid(t.data(), format));
    ++n;
  };
  for (auto& p : module.parameters()) relayout(p);
  for (auto& b : module.buffers()) relayout(b);
  return n;
}

torch::Tensor Placement::apply(const torch::Tensor& t) const {
  torch::Tensor out = t.defined() && t.device() != device ? t.to(device) : t;
  return needs_relayout(out, format) ? relaid(out, format) : out;
}

}  // namespace mpitrain
