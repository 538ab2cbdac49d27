// Per-parameter optimizer state as named tensors, for strategies that move it around themselves
// (Sharded slices it by element ranges). Implemented in optimizer_state.cpp.
#pragma once
#include <ATen/core/Tensor.h>
#include <torch/optim/optimizer.h>

#include <map>
#include <memory>
#include <string>

namespace mpitrain::detail {

/// "sgd", "adam", "adamw", "other", or "none" for an optimizer without param groups.
std::string optimizer_type(torch::optim::Optimizer& opt);
/// The named tensors of one parameter's state (step counters as int64 scalars).
std::map<std::string, at::Tensor> state_tensors(const torch::optim::OptimizerParamState& st);
/// The inverse, for `type` "sgd", "adam" or "adamw".
std::unique_ptr<torch::optim::OptimizerParamState> make_state(const std::string& type,
                                                             const std::map<std::string, at::Tensor>& t);

}  // namespace mpitrain::detail
