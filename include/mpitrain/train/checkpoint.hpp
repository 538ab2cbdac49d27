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

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

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

/// Writes a full checkpoint (rank 0 only; `rng_states` holds every rank's generator state).
/// Crash-safe: see hdf5_io/checkpoint_file.hpp. CheckpointError on failure; `path` is untouched then.
void save_checkpoint(const std::string& path, Module& module, const Optimizers& optim, const TrainerState& state,
                     const std::vector<at::Tensor>& rng_states, const CheckpointMeta& meta);

struct LoadedCheckpoint {
  TrainerState state;
  CheckpointMeta meta;
  at::Tensor rng_state;  ///< this rank's generator state; undefined if not stored for it
  bool weights_only = false;
};

/// Restores parameters and buffers into `module` and, unless `optim` is null, the optimizer and
/// scheduler. Checks format, version, names, shapes and dtypes first; any mismatch or corruption
/// raises CheckpointError naming the dataset, and leaves `module` unchanged.
LoadedCheckpoint load_checkpoint(const std::string& path, torch::nn::Module& module, const Optimizers* optim, int rank);

/// The generator state of this process (LibTorch's default CPU generator), and back.
at::Tensor rng_state();
void set_rng_state(const at::Tensor& state);

}  // namespace mpitrain
