// ZeRO stage 2's gradients (Sharded, DESIGN §3): as soon as every gradient of a bucket (see
// shard_layout.hpp) is final in a synchronising backward, the bucket is copied into one of two
// staging slots in the node-shared window, the parameters' .grad tensors are released, and the
// engine thread reduce-scatters (averages) the slot straight out of shared memory into this
// rank's owned-gradient buffer, while backward goes on (a bucket that is one evenly splitting
// parameter is reduce-scattered from its .grad, which is released after). Buckets are reduced in order, the same on
// every rank. After the step a rank holds only the averaged gradients of the elements it owns
// (1/N); a backward without synchronisation (gradient accumulation) accumulates into .grad as usual.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "grad_ready_hook.hpp"
#include "mpitrain/engine/engine.hpp"
#include "shard_layout.hpp"

namespace mpitrain::detail {

class ReduceScatteredGradients {
 public:
  /// Collective (allocates the staging slots). `params` are in the layout's parameter order.
  ReduceScatteredGradients(std::vector<torch::Tensor> params, std::vector<std::string> names,
                           const ShardLayout& layout, Engine& engine, bool find_unused_parameters);
  ~ReduceScatteredGradients();
  void before_backward(bool sync);
  /// After a synchronising backward: returns once owned() holds this rank's averaged gradients.
  void after_backward();
  /// Releases every .grad (the owned buffer is overwritten by the next reduction).
  void zero_grad();
  /// This rank's averaged gradients: layout.owned_total elements, bucket by bucket.
  torch::Tensor& owned() { return owned_; }
  /// Bytes of gradient memory held now: the owned buffer plus any defined .grad.
  double held_bytes() const;
  double staging_bytes() const { return double(slot_bytes_) * 2; }
  int64_t reductions() const { return reductions_; }

 private:
  void mark_ready(size_t i);
  void submit_ready_in_order();  // with m_ held
  void submit(size_t b);
  /// One parameter with no padding: reduced from its own .grad, not through a staging slot (so
  /// a parameter larger than the bucket cap does not size the slots).
  bool direct(const ShardLayout::Bucket& b) const {
    return b.params.size() == 1 && b.block * layout_.world == b.elems;
  }

  std::vector<torch::Tensor> params_;
  std::vector<std::string> names_;
  const ShardLayout& layout_;
  Engine& engine_;
  bool find_unused_;
  DType dtype_ = DType::Float32;
  size_t esize_ = 4, slot_bytes_ = 0;
  SharedBuffer shared_;      // two staging slots
  torch::Tensor private_;    // staging when the backend has no shared window (e.g. NCCL)
  char* staging_ = nullptr;
  torch::Tensor owned_;
  std::vector<Engine::Handle> handles_;  // per bucket, this step
  std::vector<size_t> pending_;          // per bucket: gradients not final yet
  std::vector<bool> ready_;
  size_t next_submit_ = 0;
  bool sync_ = true;
  int64_t reductions_ = 0;
  std::vector<std::unique_ptr<GradReadyHook>> hooks_;
  std::mutex m_;  // hooks may run on autograd worker threads
};

}  // namespace mpitrain::detail
