// ModelCheckpoint (Lightning's callback): when checkpoints are written, what they are called and
// which are kept. The fit loop writes them (train/checkpoint.hpp) when this callback asks, and
// through it (record + publish) whenever anything else saves (preemption).
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "mpitrain/train/callback.hpp"

namespace mpitrain {

struct ModelCheckpointOptions {
  bool enabled = true;
  std::string dirpath;              ///< "": <default_root_dir>/checkpoints
  int64_t every_n_epochs = 1;       ///< at the end of every n-th epoch; 0: off
  int64_t every_n_train_steps = 0;  ///< after every n-th optimizer step; 0: off
  std::string monitor;              ///< epoch metric ranking checkpoints, e.g. "val_loss"; "": none
  std::string mode = "min";         ///< "min" or "max" for monitor
  int save_top_k = 1;               ///< with monitor: keep the k best epoch-end checkpoints (-1: all)
  int keep_last_k = 2;              ///< keep the k newest checkpoints (-1: all); `latest` is always kept
  bool save_last = true;            ///< maintain last.h5, a hard link to the newest checkpoint

  nlohmann::json to_json() const;  ///< the JSON form of TrainerOptions::checkpoint
  static ModelCheckpointOptions from_json(const nlohmann::json& j);
  void validate() const;  ///< ConfigError naming the option
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ModelCheckpointOptions, enabled, dirpath, every_n_epochs,
                                                every_n_train_steps, monitor, mode, save_top_k, keep_last_k, save_last)

class ModelCheckpoint : public Callback {
 public:
  ModelCheckpoint(ModelCheckpointOptions options, std::string dir);

  // Callback: after every n-th step, at the end of every n-th epoch and of the last one.
  std::string state_key() const override { return "model_checkpoint"; }
  void on_train_batch_end(FitLoopView& loop, int64_t batch_idx, bool stepped) override;
  void on_train_epoch_end(FitLoopView& loop) override;
  nlohmann::json state_dict() const override { return state(); }
  void load_state_dict(const nlohmann::json& j) override { load_state(j); }

  const std::string& dir() const { return dir_; }
  bool enabled() const { return o_.enabled; }
  bool due_after_step(int64_t global_step) const;
  bool due_after_epoch(int64_t epoch) const;  ///< epoch: 0-based index of the epoch that ended
  static std::string file_name(int64_t epoch, int64_t global_step);  ///< "epoch=E-step=S.h5"

  /// Records a checkpoint about to be written (score: the monitored value, epoch ends only).
  /// Returns the older files the retention policy drops once it is safely on disk.
  std::vector<std::string> record(const std::string& file, std::optional<double> score);
  /// After the file is committed: moves `latest` (and last.h5), then removes `dropped`.
  void publish(const std::string& file, const std::vector<std::string>& dropped) const;

  /// The path of the best checkpoint by `monitor` ("" if none), and its score.
  std::string best_path() const;
  std::optional<double> best_score() const;

  /// For resume: the files it tracks and their scores.
  nlohmann::json state() const;
  void load_state(const nlohmann::json& j);

 private:
  bool better(double a, double b) const { return o_.mode == "min" ? a < b : a > b; }
  ModelCheckpointOptions o_;
  std::string dir_;
  std::vector<std::string> recent_;                   // oldest first
  std::vector<std::pair<double, std::string>> scored_;  // best first
};

}  // namespace mpitrain
