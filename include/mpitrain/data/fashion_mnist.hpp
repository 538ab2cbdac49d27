// Fashion-MNIST from its IDX files (gzip or plain), as shipped by Debian's dataset-fashion-mnist
// package in /usr/share/datasets/fashion-mnist.
#pragma once
#include <memory>
#include <string>

#include "mpitrain/data/dataset.hpp"

namespace mpitrain {

inline const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

/// Reads one IDX file (magic 0x0801 labels or 0x0803 images, unsigned bytes) into a uint8 tensor
/// of the shape the header declares. Missing, truncated or malformed files throw ConfigError
/// naming the file and the problem.
at::Tensor read_idx(const std::string& path);

/// The train (60,000) or test (10,000) split: inputs float32 [N, 1, 28, 28], pixels scaled to
/// [0, 1] then normalised as (x - mean) / std (default: the training set's statistics; the seed
/// example's torchvision Normalize((0.5,), (0.5,)) is 0.5, 0.5), targets int64 [N] in 0..9.
std::shared_ptr<TensorDataset> load_fashion_mnist(const std::string& dir, bool train, double mean = 0.2860,
                                                  double std = 0.3530);

}  // namespace mpitrain
