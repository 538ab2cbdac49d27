// The run directory's record of reported checkpoints (checkpoints.json) and their retention
// (CheckpointConfig): which files stay, which is the latest, which are best. Rank 0 only; no MPI,
// no tensors, so unit tests drive it directly.
//   <run_dir>/checkpoint_000003.h5   one per reported checkpoint (index 3)
//   <run_dir>/checkpoints.json       {"next_index": 4, "latest": 3, "checkpoints": [{index, file, metrics}]}
//   <run_dir>/latest                 hdf5_io's pointer to the latest file (mpitrain-ckpt reads it)
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "mpitrain/train/loop/checkpoint_config.hpp"

namespace mpitrain::loop::detail {

struct ManifestEntry {
  int64_t index = -1;
  std::string file;  ///< name inside the run directory
  std::map<std::string, double> metrics;
};

class CheckpointManager {
 public:
  /// Reads <run_dir>/checkpoints.json if there is one (CheckpointError if it is unreadable).
  CheckpointManager(std::string run_dir, CheckpointConfig config);

  /// The index and path the next checkpoint gets.
  int64_t next_index() const { return next_index_; }
  std::string next_path() const;
  /// ConfigError when a score attribute is configured and `metrics` lacks it (before any write).
  void check_metrics(const std::map<std::string, double>& metrics) const;
  /// Records the file just written at next_path() as the latest, then applies retention: the
  /// manifest and `latest` are replaced atomically first, the files no longer kept removed after.
  void add(const std::map<std::string, double>& metrics);

  bool empty() const { return entries_.empty(); }
  std::optional<ManifestEntry> latest() const;
  /// Kept checkpoints, best first (see Result::best_checkpoints).
  std::vector<ManifestEntry> best() const;
  std::string path_of(const ManifestEntry& e) const { return run_dir_ + "/" + e.file; }

 private:
  bool better(const ManifestEntry& a, const ManifestEntry& b) const;
  void write_manifest() const;

  std::string run_dir_;
  CheckpointConfig config_;
  std::vector<ManifestEntry> entries_;  // kept ones, in report order
  int64_t next_index_ = 0, latest_ = -1;
};

}  // namespace mpitrain::loop::detail
