// Inside a training function run by FunctionTrainer (Ray Train's ray.train.get_context / report /
// get_checkpoint). Every call here is valid only on a worker, while the function runs: elsewhere
// it throws ConfigError.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "mpitrain/comm/types.hpp"
#include "mpitrain/train/loop/checkpoint.hpp"

namespace mpitrain::loop {

struct TrainContext {
  int world_size = 1, world_rank = 0;
  int local_world_size = 1, local_rank = 0;  ///< among the ranks of this node
  int num_nodes = 1, node_rank = 0;
  std::string device = "cpu";                ///< "cuda:<n>" with ScalingConfig::use_gpu
  std::string run_dir;                       ///< <storage_path>/<name>: checkpoints and checkpoints.json
  int attempt = 0;                           ///< 0, then 1, 2, ... after each relaunch (FailureConfig)
};

/// Where this worker runs.
const TrainContext& get_context();

/// Collective (every rank, in the same order): reports rank 0's `metrics` (Result::metrics keeps
/// the last) and, if rank 0 passes one, persists its `checkpoint` as the run's next checkpoint
/// (rank 0 writes it, crash-safe, then applies the run config's retention). Returns when the file
/// is on disk. ConfigError on every rank when the checkpoint score attribute is not among the
/// metrics reported with a checkpoint; CheckpointError on every rank when the write fails (the
/// run's earlier checkpoints are untouched).
void report(const std::map<std::string, double>& metrics, const std::optional<Checkpoint>& checkpoint = std::nullopt);

/// Collective (every rank calls it, and every rank reads the file: the storage path is shared, as
/// for report): the run's last reported checkpoint, read from disk: the one reported last in this attempt, else
/// the one the run resumes from (the latest of the failed attempt after a relaunch, or
/// FunctionTrainer's resume_from_checkpoint); nullopt on a fresh start.
std::optional<Checkpoint> get_checkpoint();

/// Collective: `values` reduced element-wise over the ranks (Sum, Min, Max, Avg), on every rank,
/// e.g. correct predictions and examples seen, to report an accuracy over the whole test set.
std::vector<double> allreduce(std::vector<double> values, ReduceOp op = ReduceOp::Sum);

}  // namespace mpitrain::loop
