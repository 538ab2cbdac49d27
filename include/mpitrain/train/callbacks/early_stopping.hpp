// EarlyStopping (Lightning's callback): ends fit when a monitored epoch metric has not improved
// for `patience` epochs. Its best value and patience count travel in checkpoints.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

#include "mpitrain/train/callback.hpp"

namespace mpitrain {

struct EarlyStoppingOptions {
  std::string monitor;  ///< empty: off. A metric name logged on epoch level, e.g. "val_loss"
  std::string mode = "min";
  int patience = 3;
  double min_delta = 0.0;
  void validate() const;  ///< ConfigError naming the option
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(EarlyStoppingOptions, monitor, mode, patience, min_delta)

class EarlyStopping : public Callback {
 public:
  explicit EarlyStopping(EarlyStoppingOptions options);
  std::string state_key() const override { return "early_stopping"; }
  void on_fit_start(FitLoopView& loop) override;  ///< a run resumed after it stopped stays stopped
  void on_train_epoch_end(FitLoopView& loop) override;
  void on_fit_end(FitLoopView& loop) override;    ///< reports early_stopping_best
  nlohmann::json state_dict() const override;
  void load_state_dict(const nlohmann::json& state) override;

 private:
  EarlyStoppingOptions o_;
  double best_;
  int64_t bad_epochs_ = 0;
  bool stopped_ = false;
};

}  // namespace mpitrain
