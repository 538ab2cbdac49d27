// Checkpoint contents (DESIGN §3) on top of hdf5_io's crash-safe files:
//   /model/<parameter name>            parameters (names as named_parameters(), e.g. "net.layers.0.weight")
//   /buffers/<buffer name>             buffers (BatchNorm statistics, ...)
//   /optimizer/<parameter name>/<key>  optimizer state (SGD momentum_buffer; Adam/AdamW step, exp_avg, ...)
//   /optimizer  attrs type, param_groups (JSON: options and parameter names of every group)
//   /trainer    attrs epoch, batch_in_epoch, global_step, scheduler_steps, state (JSON: callbacks, metrics)
//   /rng/rank_<r>                      LibTorch's CPU generator state of every rank
//   /  attrs format, format_version, library_version, module, config, trainer_options, world_size,
//      strategy, kind ("full" or "weights")
// Files are world-size independent except for /rng (restored only when the world size matches).
#pragma once
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mpitrain/strategy/optimizer_state.hpp"
#include "mpitrain/train/module.hpp"

namespace mpitrain {

/// Where training stands; together with model, optimizer and RNG it resumes a run exactly.
struct TrainerState {
  int64_t epoch = 0;           ///< epoch to continue in
  int64_t batch_in_epoch = 0;  ///< next batch of that epoch (0: its start)
  int64_t global_step = 0;     ///< optimizer steps so far
  nlohmann::json extra = nlohmann::json::object();  ///< callbacks, metric history, partial epoch sums
};

struct CheckpointMeta {
  std::string module;  ///< registered module name
  Config config = Config::object();
  nlohmann::json trainer_options = nlohmann::json::object();
  int world_size = 1;
  std::string strategy = "ddp";
};

/// One full checkpoint being written (rank 0): everything but the optimizer at construction, the
/// optimizer part through optimizer() (the strategy decides what goes there), then commit().
/// Crash-safe (hdf5_io/checkpoint_file.hpp): nothing appears at `path` until commit() succeeds.
class CheckpointFileWriter {
 public:
  CheckpointFileWriter(const std::string& path, torch::nn::Module& module, const TrainerState& state,
                       int64_t scheduler_steps, const std::vector<at::Tensor>& rng_states, const CheckpointMeta& meta);
  ~CheckpointFileWriter();  ///< without commit(): the temporary file is removed, `path` untouched
  /// Writes into /optimizer. Failures are kept and raised by commit(), so a strategy that
  /// streams shards from other ranks keeps its collectives in step when a write fails.
  OptimizerStateWriter& optimizer();
  void commit();  ///< CheckpointError on failure

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Writes a full checkpoint of a run whose optimizer is replicated (rank 0 only; `rng_states`
/// holds every rank's generator state). CheckpointError on failure; `path` is untouched then.
void save_checkpoint(const std::string& path, Module& module, const Optimizers& optim, const TrainerState& state,
                     const std::vector<at::Tensor>& rng_states, const CheckpointMeta& meta);

struct LoadedCheckpoint {
  TrainerState state;
  CheckpointMeta meta;
  at::Tensor rng_state;  ///< this rank's generator state; undefined if not stored for it
  bool weights_only = false;
};

/// Restores parameters and buffers into `module` and, when `load_optimizer` is given, the trainer
/// state, generator state and scheduler steps, calling `load_optimizer` with a reader of the
/// optimizer part (a strategy's load_optimizer_state). Checks format, version, names, shapes and
/// dtypes first; any mismatch or corruption raises CheckpointError naming the dataset, and leaves
/// `module` unchanged.
LoadedCheckpoint load_checkpoint(const std::string& path, torch::nn::Module& module, int rank,
                                 const std::function<void(OptimizerStateReader&)>& load_optimizer,
                                 LRScheduler* scheduler = nullptr);
/// The same for a replicated optimizer (`optim` null: weights only).
LoadedCheckpoint load_checkpoint(const std::string& path, torch::nn::Module& module, const Optimizers* optim, int rank);

/// The generator state of this process (LibTorch's default CPU generator), and back.
at::Tensor rng_state();
void set_rng_state(const at::Tensor& state);

}  // namespace mpitrain
