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
bool needs_relayout(const torch::Tensor& t, c10::MemoryFormat f) {
  return t.defined() && t.dim() == 4 && !t.is_contiguous(f);
}
}  // namespace

size_t Placement::apply(torch::nn::Module& module) const {
  if (!device.is_cpu()) module.to(device);
  torch::NoGradGuard no_grad;
  size_t n = 0;
  // set_data keeps each tensor's identity (optimizers and strategies hold them) and swaps its storage.
  auto relayout = [&](torch::Tensor& t) {
    if (!needs_relayout(t, format)) return;
    t.set_data(t.data().contiguous(format));
    ++n;
  };
  for (auto& p : module.parameters()) relayout(p);
  for (auto& b : module.buffers()) relayout(b);
  return n;
}

torch::Tensor Placement::apply(const torch::Tensor& t) const {
  torch::Tensor out = t.defined() && t.device() != device ? t.to(device) : t;
  return needs_relayout(out, format) ? out.contiguous(format) : out;
}

}  // namespace mpitrain
