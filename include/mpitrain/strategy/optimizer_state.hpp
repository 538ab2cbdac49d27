// The optimizer part of a checkpoint, independent of where it is stored: the optimizer's type,
// its param groups (options + parameter names) and per-parameter state tensors named by
// (parameter name, key), e.g. ("net.fc.weight", "exp_avg"). The train layer stores these in
// HDF5 (/optimizer/<parameter>/<key>); strategies decide who writes and reads which part (DDP:
// rank 0 writes its replica, every rank reads it all; a sharded strategy streams its shards).
#pragma once
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace mpitrain {

class OptimizerStateWriter {
 public:
  virtual ~OptimizerStateWriter() = default;
  /// type: "sgd", "adam", "adamw" (named state) or "other" (LibTorch's archive, write_archive).
  virtual void write_header(const std::string& type, const nlohmann::json& param_groups) = 0;
  virtual void write_state(const std::string& param, const std::string& key, const at::Tensor& value) = 0;
  virtual void write_archive(const std::string& bytes) = 0;
};

class OptimizerStateReader {
 public:
  virtual ~OptimizerStateReader() = default;
  virtual bool present() = 0;  ///< false when the checkpoint has no optimizer part at all
  virtual std::string type() = 0;
  virtual nlohmann::json param_groups() = 0;
  /// Keys stored for `param` (empty: never stepped).
  virtual std::vector<std::string> state_keys(const std::string& param) = 0;
  virtual at::Tensor read_state(const std::string& param, const std::string& key) = 0;
  virtual std::string read_archive() = 0;
  /// "checkpoint <path>", for messages.
  virtual std::string source() = 0;
};

/// Writes `optimizer`'s whole state, parameters named as in `model`. CheckpointError if the
/// optimizer holds a tensor that is not a parameter of `model`.
void write_optimizer_state(torch::optim::Optimizer& optimizer, torch::nn::Module& model, OptimizerStateWriter& out);

/// Checks everything (type, groups, parameter names, shapes, required keys) before it changes
/// anything, then restores options and state. CheckpointError naming what does not match.
void read_optimizer_state(torch::optim::Optimizer& optimizer, torch::nn::Module& model, OptimizerStateReader& in);

}  // namespace mpitrain
