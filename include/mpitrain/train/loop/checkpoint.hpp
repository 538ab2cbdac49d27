// What a hand-written training loop reports and resumes from (Ray Train's Checkpoint): named
// tensors plus JSON state, optionally the files of a small directory, in one crash-safe HDF5 file
// (hdf5_io/checkpoint_file.hpp), readable by h5py:
//   /tensors/<name>   every tensor (names may contain '/', e.g. "model/fc.weight")
//   /files/<path>     a directory's files as uint8 datasets (from_directory)
//   /  attrs format, format_version, kind = "loop", state (JSON), metrics (JSON), index
#pragma once
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

namespace mpitrain::loop {

class Checkpoint {
 public:
  std::map<std::string, at::Tensor> tensors;         ///< CPU copies are written; any dtype hdf5_io stores
  nlohmann::json state = nlohmann::json::object();   ///< e.g. {"epoch": 3}
  std::map<std::string, std::string> files;          ///< relative path -> contents (from_directory)

  // Set when the checkpoint comes from a report (read back or returned by get_checkpoint()).
  std::string path;                                  ///< its file
  int64_t index = -1;                                ///< 0, 1, ... in report order within the run
  std::map<std::string, double> metrics;             ///< what was reported with it

  /// Parameters and buffers of `module` as tensors "<prefix>/<name>" (a state_dict).
  void add_module(const std::string& prefix, const torch::nn::Module& module);
  /// Restores them into `module`: every parameter and buffer must be there with its shape and dtype
  /// (load_state_dict(strict=True)). CheckpointError naming the first that is not; `module` is
  /// unchanged then.
  void load_module(const std::string& prefix, torch::nn::Module& module) const;
  /// A replicated optimizer's whole state (SGD momentum, Adam moments and steps, param groups) as
  /// tensors "<prefix>/<parameter>/<key>" and state["<prefix>"]; parameters named as in `module`.
  void add_optimizer(const std::string& prefix, torch::optim::Optimizer& optimizer, torch::nn::Module& module);
  /// Restores it; CheckpointError for another optimizer type, groups or shapes (nothing changed then).
  void load_optimizer(const std::string& prefix, torch::optim::Optimizer& optimizer, torch::nn::Module& module) const;

  /// The regular files under `dir` (recursively), kept as bytes; CheckpointError if unreadable.
  static Checkpoint from_directory(const std::string& dir);
  /// Writes `files` under `dir` (created); returns `dir`.
  std::string to_directory(const std::string& dir) const;

  /// Crash-safe write: nothing appears at `path` until the file is complete and fsynced.
  void save(const std::string& path) const;
  /// Reads a file written by save() (checks format, checksums); CheckpointError naming the problem.
  static Checkpoint load(const std::string& path);
};

}  // namespace mpitrain::loop
