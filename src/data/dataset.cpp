#include "mpitrain/data/dataset.hpp"

#include <ATen/ATen.h>

#include "mpitrain/errors.hpp"

namespace mpitrain {

TensorDataset::TensorDataset(at::Tensor input, at::Tensor target, std::string name)
    : input_(std::move(input)), target_(std::move(target)), name_(std::move(name)) {
  if (!input_.defined() || !target_.defined() || input_.dim() < 1 || target_.dim() < 1)
    throw ConfigError("dataset " + name_ + ": inputs and targets need a first (example) dimension");
  if (input_.size(0) != target_.size(0))
    throw ConfigError("dataset " + name_ + ": " + std::to_string(input_.size(0)) + " inputs but " +
                      std::to_string(target_.size(0)) + " targets");
}

int64_t TensorDataset::size() const { return input_.size(0); }

Batch TensorDataset::get(const std::vector<int64_t>& indices) const {
  at::Tensor idx = at::from_blob(const_cast<int64_t*>(indices.data()), {int64_t(indices.size())}, at::kLong);
  return {input_.index_select(0, idx), target_.index_select(0, idx)};
}

}  // namespace mpitrain
