// Sharded strategy, ZeRO stages 1 and 2 (RayShardedStrategy's memory win, DESIGN §3). The optimizer
// state is partitioned by elements of one flat parameter space (shard_layout.hpp): parameters in
// buckets (reverse order, DDP's bucket sizes), each bucket split into N equal blocks, rank r owning
// block r of every bucket, so every rank holds 1/N of the state whatever the tensor sizes (a
// parameter may straddle ranks). Each rank steps only what it owns, with an optimizer of the run's
// type and options; owners share the updated blocks back with one in-place allgather per bucket
// over the flat buffer the parameters live in (zero-copy in the node-shared window).
// Stage 1: gradients averaged as in DDP (its buckets, overlapped with backward).
// Stage 2: gradients reduce-scattered bucket by bucket while backward goes on; a rank keeps only
// the averaged gradients it owns, .grad tensors are released (reduce_scattered_gradients.hpp).
// Checkpoints hold whole tensors (gathered one parameter at a time, written by rank 0), the same
// layout as DDP's, so a run saved on N ranks resumes on M, or under DDP, and vice versa.
// SGD, Adam, AdamW. Registered as "sharded" (options: ShardedOptions' fields).
#pragma once
#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "mpitrain/strategy/ddp.hpp"
#include "mpitrain/strategy/strategy.hpp"

namespace mpitrain {

struct ShardedOptions {
  int stage = 1;  ///< ZeRO stage: 1 (optimizer state sharded) or 2 (and gradients)
  DDPOptions ddp;  ///< bucket sizes (both stages), find_unused_parameters
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ShardedOptions, stage, ddp)

class Sharded final : public Strategy {
 public:
  /// ConfigError for a stage other than 1 or 2.
  explicit Sharded(ShardedOptions options = {});
  ~Sharded() override;
  const char* name() const override { return "sharded"; }
  void setup(torch::nn::Module& model, torch::optim::Optimizer* optimizer, Engine& engine) override;
  void before_backward(bool sync) override;
  void after_backward() override;
  void optimizer_step() override;
  void zero_grad() override;
  /// Stage 2: the norm over every rank's owned gradients (collective). Stage 1: as DDP.
  double clip_grad_norm(double max_norm) override;
  void save_optimizer_state(OptimizerStateWriter* out) override;
  void load_optimizer_state(OptimizerStateReader& in) override;
  /// stage, owned_elements, total_elements, optimizer_state_bytes and gradient_bytes (held by this
  /// rank after the step), buckets; stage 1 adds DDP's, stage 2 staging_bytes and reductions.
  std::map<std::string, double> stats() const override;

  /// What this rank owns: elements [begin, begin + length) of parameter `name`.
  struct OwnedPiece {
    std::string name;
    int64_t begin, length;
  };
  std::vector<OwnedPiece> owned_pieces() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mpitrain
