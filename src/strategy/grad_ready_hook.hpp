// "This parameter's gradient is final for this backward": a post hook on the parameter's
// AccumulateGrad node, shared by DDP (bucket readiness) and the named-gradient strategies
// (submission by name). Hooks may run on autograd worker threads.
#pragma once
#include <torch/csrc/autograd/function_hook.h>
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <utility>

namespace mpitrain::detail {

/// A hook registered on one accumulator; removes itself when destroyed.
class GradReadyHook {
 public:
  GradReadyHook(const torch::Tensor& param, std::function<void()> ready)
      : accumulator_(torch::autograd::impl::grad_accumulator(param)),
        key_(accumulator_->add_post_hook(std::make_unique<Hook>(std::move(ready)))) {}
  ~GradReadyHook() { accumulator_->del_post_hook(key_); }
  GradReadyHook(const GradReadyHook&) = delete;
  GradReadyHook& operator=(const GradReadyHook&) = delete;

 private:
  struct Hook : torch::autograd::FunctionPostHook {
    explicit Hook(std::function<void()> f) : ready(std::move(f)) {}
    torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                              const torch::autograd::variable_list&) override {
      ready();
      return outputs;
    }
    std::function<void()> ready;
  };
  std::shared_ptr<torch::autograd::Node> accumulator_;  // kept alive, with its hooks
  uintptr_t key_;
};

}  // namespace mpitrain::detail
