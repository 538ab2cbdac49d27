// What the Sharded strategy's files share (sharded.cpp: setup and stepping;
// sharded_checkpoint.cpp: optimizer state in and out).
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "mpitrain/strategy/sharded.hpp"
#include "reduce_scattered_gradients.hpp"
#include "shard_layout.hpp"

namespace mpitrain {

struct Sharded::Impl {
  // The part of parameter `param` this rank owns: elements [begin, begin + length) of it.
  struct Piece {
    size_t param;
    int64_t begin, length;
    torch::Tensor shard;  // a view into `flat`: the optimizer steps it in place
    torch::Tensor grad;   // stage 2: its averaged gradient, a view into the owned buffer
  };

  ShardedOptions opts;
  std::unique_ptr<DDP> ddp;                                   // stage 1: gradients averaged as in DDP
  std::unique_ptr<detail::ReduceScatteredGradients> scatter;  // stage 2
  std::string type;                    // of the run's optimizer: sgd, adam, adamw
  std::vector<torch::Tensor> params;   // the optimizer's parameters, in its group order
  std::vector<std::string> names;
  std::vector<size_t> group_of;        // param -> the run optimizer's group
  detail::ShardLayout layout;
  SharedBuffer flat_shared;            // the flat parameter space (zero-copy allgather), if any
  torch::Tensor flat;                  // every parameter lives in here
  std::vector<Piece> pieces;
  std::unique_ptr<torch::optim::Optimizer> shard_opt;
  std::vector<size_t> shard_group_source;  // shard optimizer group -> run optimizer group
};

namespace detail {
inline std::string impl_key(const at::Tensor& p) { return c10::guts::to_string(p.unsafeGetTensorImpl()); }
}  // namespace detail

}  // namespace mpitrain
