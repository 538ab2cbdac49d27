// Callbacks: code that runs at the fit loop's hooks, with Lightning's hook names, and keeps its
// own state in checkpoints. EarlyStopping, ModelCheckpoint, the progress bar, the loggers and
// preemption are callbacks (src/train/callbacks/, one file each); a user's callback is registered
// by name, so spawned workers rebuild it (TrainerOptions::callbacks = {{"name", {options}}}):
//   struct Recorder : mpitrain::Callback { ... };
//   MPITRAIN_REGISTER_CALLBACK("recorder", [](const nlohmann::json& o) { return std::make_shared<Recorder>(o); });
// Hooks run on every rank, in list order (built-ins first, ModelCheckpoint and preemption last);
// a hook may use collectives (loop.engine()) because every rank runs the same hooks.
#pragma once
#include <nlohmann/json.hpp>

#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mpitrain/engine/engine.hpp"
#include "mpitrain/launch/task_context.hpp"

namespace mpitrain {

class Module;
struct TrainerOptions;

/// What a callback sees of the running fit loop (Lightning hands its hooks the trainer).
class FitLoopView {
 public:
  virtual ~FitLoopView() = default;
  virtual const TrainerOptions& options() const = 0;
  virtual Module& module() = 0;
  virtual TaskContext& task() = 0;  ///< rank, world size, log(), report_progress()
  virtual Engine& engine() = 0;     ///< collectives: every rank runs the same hooks
  virtual int rank() const = 0;
  virtual int world_size() const = 0;

  virtual int64_t epoch() const = 0;        ///< the current epoch (0-based)
  virtual int64_t global_step() const = 0;  ///< optimizer steps so far
  virtual int64_t batches_in_epoch() const = 0;
  virtual bool resumed() const = 0;         ///< the run continues a checkpoint
  /// Values logged with on_step in the step that just ended (on_train_batch_end).
  virtual const std::map<std::string, double>& step_metrics() const = 0;
  /// The epoch's aggregated metrics (on_validation_end, on_train_epoch_end).
  virtual const std::map<std::string, double>& epoch_metrics() const = 0;
  /// True in on_train_epoch_end when fit ends after this epoch (last epoch, max_steps, a stop).
  virtual bool last_epoch() const = 0;
  /// max_steps stopped the epoch before its end: the batch it would continue at; else -1.
  virtual int64_t stopped_at_batch() const = 0;

  /// Ends fit after this epoch's end hooks (EarlyStopping).
  virtual void request_stop(const std::string& reason) = 0;
  /// Ends fit now, as Preempted by `signal`, with no further epoch-end hooks.
  virtual void request_preemption(int signal) = 0;
  /// Collective: writes a checkpoint of the current position through ModelCheckpoint (its
  /// retention, `latest`); score: the monitored value at an epoch end.
  virtual void save_checkpoint(int64_t epoch, int64_t batch_in_epoch, std::optional<double> score) = 0;
  virtual int64_t last_saved_step() const = 0;  ///< -1 before the first checkpoint of this run
  /// Adds a value to the fit result's metrics (e.g. "early_stopping_best").
  virtual void report_result_metric(const std::string& name, double value) = 0;
};

class Callback {
 public:
  virtual ~Callback() = default;
  /// Key of this callback's state in checkpoints (state_dict); unique within one fit.
  virtual std::string state_key() const = 0;

  virtual void on_fit_start(FitLoopView& loop) {}
  virtual void on_train_epoch_start(FitLoopView& loop) {}
  virtual void on_train_batch_start(FitLoopView& loop, int64_t batch_idx) {}
  /// After every batch; `stepped`: an optimizer step ended with it (not an accumulating batch).
  virtual void on_train_batch_end(FitLoopView& loop, int64_t batch_idx, bool stepped) {}
  virtual void on_validation_start(FitLoopView& loop) {}
  virtual void on_validation_end(FitLoopView& loop) {}
  /// After the epoch's training and validation, with its metrics aggregated (Lightning 2's order).
  virtual void on_train_epoch_end(FitLoopView& loop) {}
  virtual void on_fit_end(FitLoopView& loop) {}
  /// fit is failing with `error` (on this rank: one rank's own failure ends an SPMD job at once
  /// after this hook); cleanup only, no collectives.
  virtual void on_exception(FitLoopView& loop, const std::exception& error) {}

  /// State saved in checkpoints (null: none), restored by load_state_dict before on_fit_start.
  virtual nlohmann::json state_dict() const { return nullptr; }
  virtual void load_state_dict(const nlohmann::json& state) {}
};

/// A callback as the Trainer's options name it.
struct CallbackSpec {
  std::string name;
  nlohmann::json options = nlohmann::json::object();
};

using CallbackFactory = std::function<std::shared_ptr<Callback>(const nlohmann::json& options)>;
bool register_callback(const std::string& name, CallbackFactory factory);
/// ConfigError "unknown callback 'x' (registered: ...)" for a name nobody registered.
std::shared_ptr<Callback> create_callback(const CallbackSpec& spec);
bool callback_registered(const std::string& name);

}  // namespace mpitrain

#define MPITRAIN_CALLBACK_CONCAT_INNER(a, b) a##b
#define MPITRAIN_CALLBACK_CONCAT(a, b) MPITRAIN_CALLBACK_CONCAT_INNER(a, b)
/// MPITRAIN_REGISTER_CALLBACK("name", factory) at namespace scope.
#define MPITRAIN_REGISTER_CALLBACK(name, factory)                                                   \
  static const bool MPITRAIN_CALLBACK_CONCAT(mpitrain_callback_registered_, __COUNTER__) = \
      ::mpitrain::register_callback(name, factory)
