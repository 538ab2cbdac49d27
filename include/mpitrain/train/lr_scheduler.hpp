// Learning-rate schedules, stepped by the Trainer (per optimizer step): step decay, cosine
// annealing, one-cycle (as torch.optim.lr_scheduler's StepLR, CosineAnnealingLR, OneCycleLR).
#pragma once
#include <torch/optim/optimizer.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace mpitrain {

class LRScheduler {
 public:
  explicit LRScheduler(torch::optim::Optimizer& opt);
  virtual ~LRScheduler() = default;
  /// Advances one optimizer step and sets every param group's lr.
  void step();
  int64_t steps() const { return steps_; }
  void set_steps(int64_t s);  ///< resume
  double last_lr() const;

 protected:
  /// lr of a group with initial lr `base` after `t` steps.
  virtual double lr_at(double base, int64_t t) const = 0;

 private:
  void apply();
  torch::optim::Optimizer& opt_;
  std::vector<double> base_;
  int64_t steps_ = 0;
};

/// lr = base * gamma ^ floor(t / step_size)
std::shared_ptr<LRScheduler> make_step_lr(torch::optim::Optimizer& opt, int64_t step_size, double gamma = 0.1);
/// lr = eta_min + (base - eta_min)(1 + cos(pi t / t_max)) / 2
std::shared_ptr<LRScheduler> make_cosine_lr(torch::optim::Optimizer& opt, int64_t t_max, double eta_min = 0);
/// Warm up from max_lr/div_factor to max_lr over pct_start of total_steps, then cosine down to
/// max_lr/(div_factor*final_div_factor) (OneCycleLR with anneal_strategy="cos", no momentum cycling).
std::shared_ptr<LRScheduler> make_one_cycle_lr(torch::optim::Optimizer& opt, double max_lr, int64_t total_steps,
                                               double pct_start = 0.3, double div_factor = 25,
                                               double final_div_factor = 1e4);

/// The lr of every param group; works for SGD, Adam and AdamW.
double get_lr(const torch::optim::OptimizerParamGroup& g);
void set_lr(torch::optim::OptimizerParamGroup& g, double lr);

}  // namespace mpitrain
