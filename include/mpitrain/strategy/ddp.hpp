// DDP: rank 0's parameters and buffers are broadcast at setup; gradients land in buckets (25 MiB,
// the first 1 MiB, reverse parameter order) of one fusion buffer in the Communicator's node-
// shared window, and each parameter's .grad is a view into its bucket with the parameter's own
// strides (PyTorch's gradient_as_bucket_view; channels-last parameters get channels-last
// slots), so gradients are written once and reduced in place, zero-copy. A bucket is averaged
// on the engine thread as soon as all its gradients are accumulated, while backward goes on;
// buckets are always reduced in order, the same on every rank. On GPU
// (parameters on a CUDA device) the buckets live in that device's memory instead and go through
// the Communicator's device path (NCCL). Registered as strategy "ddp" (options: DDPOptions' fields).
#pragma once
#include <nlohmann/json.hpp>

#include <memory>
#include <vector>

#include "mpitrain/strategy/strategy.hpp"

namespace mpitrain {

struct DDPOptions {
  size_t bucket_cap_bytes = size_t(25) << 20;
  size_t first_bucket_bytes = size_t(1) << 20;
  /// Parameters that get no gradient in a step contribute zeros instead of raising an error.
  bool find_unused_parameters = false;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DDPOptions, bucket_cap_bytes, first_bucket_bytes, find_unused_parameters)

class DDP final : public Strategy {
 public:
  explicit DDP(DDPOptions options = {});
  ~DDP() override;
  const char* name() const override { return "ddp"; }
  void setup(torch::nn::Module& model, torch::optim::Optimizer* optimizer, Engine& engine) override;
  void before_backward(bool sync) override;
  void after_backward() override;
  void zero_grad() override;
  std::map<std::string, double> stats() const override;  ///< buckets, bucket_bytes, reductions

  /// Bucket layout, for tests and logs: element counts per bucket in reduction order.
  std::vector<int64_t> bucket_sizes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mpitrain
