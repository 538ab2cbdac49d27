#include "mpitrain/train/lr_scheduler.hpp"

#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include <cmath>

#include "mpitrain/errors.hpp"

namespace mpitrain {

double get_lr(const torch::optim::OptimizerParamGroup& g) {
  const auto& o = g.options();
  if (auto* s = dynamic_cast<const torch::optim::SGDOptions*>(&o)) return s->lr();
  if (auto* a = dynamic_cast<const torch::optim::AdamOptions*>(&o)) return a->lr();
  if (auto* w = dynamic_cast<const torch::optim::AdamWOptions*>(&o)) return w->lr();
  throw ConfigError("learning-rate scheduling supports SGD, Adam and AdamW optimizers");
}

void set_lr(torch::optim::OptimizerParamGroup& g, double lr) {
  auto& o = g.options();
  if (auto* s = dynamic_cast<torch::optim::SGDOptions*>(&o)) s->lr(lr);
  else if (auto* a = dynamic_cast<torch::optim::AdamOptions*>(&o)) a->lr(lr);
  else if (auto* w = dynamic_cast<torch::optim::AdamWOptions*>(&o)) w->lr(lr);
  else throw ConfigError("learning-rate scheduling supports SGD, Adam and AdamW optimizers");
}

LRScheduler::LRScheduler(torch::optim::Optimizer& opt) : opt_(opt) {
  for (auto& g : opt_.param_groups()) base_.push_back(get_lr(g));
}

void LRScheduler::apply() {
  auto& groups = opt_.param_groups();
  for (size_t i = 0; i < groups.size(); ++i) set_lr(groups[i], lr_at(base_[i], steps_));
}

void LRScheduler::step() {
  ++steps_;
  apply();
}

void LRScheduler::set_steps(int64_t s) {
  steps_ = s;
  apply();
}

double LRScheduler::last_lr() const { return get_lr(opt_.param_groups().front()); }

namespace {
class Lambda : public LRScheduler {
 public:
  Lambda(torch::optim::Optimizer& o, std::function<double(double, int64_t)> f) : LRScheduler(o), f_(std::move(f)) {}

 protected:
  double lr_at(double base, int64_t t) const override { return f_(base, t); }

 private:
  std::function<double(double, int64_t)> f_;
};
}  // namespace

std::shared_ptr<LRScheduler> make_step_lr(torch::optim::Optimizer& opt, int64_t step_size, double gamma) {
  if (step_size < 1) throw ConfigError("step LR: step_size must be >= 1");
  return std::make_shared<Lambda>(opt, [=](double base, int64_t t) { return base * std::pow(gamma, double(t / step_size)); });
}

std::shared_ptr<LRScheduler> make_cosine_lr(torch::optim::Optimizer& opt, int64_t t_max, double eta_min) {
  if (t_max < 1) throw ConfigError("cosine LR: t_max must be >= 1");
  return std::make_shared<Lambda>(opt, [=](double base, int64_t t) {
    const double x = double(std::min(t, t_max)) / double(t_max);
    return eta_min + (base - eta_min) * (1 + std::cos(M_PI * x)) / 2;
  });
}

std::shared_ptr<LRScheduler> make_one_cycle_lr(torch::optim::Optimizer& opt, double max_lr, int64_t total_steps,
                                               double pct_start, double div_factor, double final_div_factor) {
  if (total_steps < 2 || pct_start <= 0 || pct_start >= 1) throw ConfigError("one-cycle LR: need total_steps >= 2, 0 < pct_start < 1");
  const double initial = max_lr / div_factor, final_lr = initial / final_div_factor;
  const double up = pct_start * double(total_steps) - 1, down = double(total_steps) - 1 - up;
  auto cos_anneal = [](double a, double b, double x) { return b + (a - b) * (1 + std::cos(M_PI * x)) / 2; };
  auto s = std::make_shared<Lambda>(opt, [=](double, int64_t t) {
    const double x = double(t);
    if (x <= up) return cos_anneal(initial, max_lr, x / up);
    return cos_anneal(max_lr, final_lr, std::min(1.0, (x - up) / down));
  });
  s->set_steps(0);  // OneCycleLR starts at max_lr / div_factor
  return s;
}

}  // namespace mpitrain
