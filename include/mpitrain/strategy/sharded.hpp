// Sharded strategy, ZeRO stage 1 (RayShardedStrategy's memory win, DESIGN §3): the optimizer
// state is partitioned across ranks by elements of one flat parameter space — rank r owns
// elements [r*ceil(T/N), (r+1)*ceil(T/N)) of the T trainable elements, whatever the tensor
// sizes (a parameter may straddle two ranks), so every rank holds 1/N of it. Gradients are averaged
// as in DDP (its buckets, overlapped with backward); each rank steps only the slices it owns, with
// an optimizer of the run's type and options; the updated slices are shared back with one
// allgather over the flat parameter buffer that the parameters live in. Checkpoints hold whole
// tensors (gathered one parameter at a time, written by rank 0), the same layout as DDP's, so a
// run saved on N ranks resumes on M, or under DDP, and vice versa. SGD, Adam, AdamW.
// Registered as "sharded" (options: ShardedOptions' fields). Stage 2 (gradients reduce-scattered
// to their owners) is not implemented yet.
#pragma once
#include <nlohmann/json.hpp>

#include <memory>
#include <vector>

#include "mpitrain/strategy/ddp.hpp"
#include "mpitrain/strategy/strategy.hpp"

namespace mpitrain {

struct ShardedOptions {
  int stage = 1;  ///< ZeRO stage; 1 (optimizer state sharded)
  DDPOptions ddp;  ///< how gradients are averaged (buckets)
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ShardedOptions, stage, ddp)

class Sharded final : public Strategy {
 public:
  /// ConfigError for a stage other than 1.
  explicit Sharded(ShardedOptions options = {});
  ~Sharded() override;
  const char* name() const override { return "sharded"; }
  void setup(torch::nn::Module& model, torch::optim::Optimizer* optimizer, Engine& engine) override;
  void before_backward(bool sync) override;
  void after_backward() override;
  void optimizer_step() override;
  void zero_grad() override;
  void save_optimizer_state(OptimizerStateWriter* out) override;
  void load_optimizer_state(OptimizerStateReader& in) override;
  /// owned_elements, total_elements, optimizer_state_bytes (this rank's), plus DDP's.
  std::map<std::string, double> stats() const override;

  /// This rank's element range [first, second) of the flat parameter space.
  std::pair<int64_t, int64_t> owned_range() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mpitrain
