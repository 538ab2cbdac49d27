// Datasets hand out whole batches by index (one index_select, not a gather of examples).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mpitrain {

struct Batch {
  at::Tensor input;   ///< [B, ...]
  at::Tensor target;  ///< [B] (class indices, int64) or [B, ...]
  int64_t size() const { return input.defined() ? input.size(0) : 0; }
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  /// The examples at `indices`, in that order.
  virtual Batch get(const std::vector<int64_t>& indices) const = 0;
  virtual std::string name() const = 0;
  /// True if this dataset holds only this rank's examples (already split across ranks): loaders
  /// then shuffle it locally instead of splitting it again with a DistributedSampler.
  virtual bool rank_local() const { return false; }
};

/// In-memory inputs and targets; dimension 0 indexes examples.
class TensorDataset : public Dataset {
 public:
  TensorDataset(at::Tensor input, at::Tensor target, std::string name);
  int64_t size() const override;
  Batch get(const std::vector<int64_t>& indices) const override;
  std::string name() const override { return name_; }
  const at::Tensor& input() const { return input_; }
  const at::Tensor& target() const { return target_; }

 private:
  at::Tensor input_, target_;
  std::string name_;
};

}  // namespace mpitrain
