// Placement: where a training run's tensors live (device) and how 4-D ones are laid out in memory
// (TrainerOptions::memory_format). "channels_last" (NHWC) lets oneDNN run convolutions, batch
// norm and pooling without reordering NCHW tensors on every call (PyTorch's
// `model.to(memory_format=torch.channels_last)`); shapes, names and checkpoints do not change
// (HDF5 tensors are always written contiguous, and loading copies into the parameter's layout).
#pragma once
#include <torch/nn/module.h>

#include <string>

#include "mpitrain/data/dataset.hpp"

namespace mpitrain {

/// "contiguous" (the default: layouts as LibTorch makes them, untouched) or "channels_last";
/// ConfigError naming the value otherwise.
c10::MemoryFormat parse_memory_format(const std::string& name);

struct Placement {
  torch::Device device = torch::kCPU;
  c10::MemoryFormat format = c10::MemoryFormat::Contiguous;

  /// Moves the module to `device` and, for channels_last, gives its 4-D parameters and buffers
  /// NHWC strides (one-channel ones too, where contiguous(ChannelsLast) would keep NCHW's), in
  /// place: the same tensors (an optimizer's references stay valid), new storage. Returns how
  /// many tensors it laid out anew (0 when they already were; for logs and tests).
  size_t apply(torch::nn::Module& module) const;
  /// The tensor on `device`, NHWC for channels_last when it is 4-D (an image batch); untouched if already so.
  torch::Tensor apply(const torch::Tensor& t) const;
  Batch apply(Batch batch) const { return {apply(batch.input), apply(batch.target)}; }
};

}  // namespace mpitrain
