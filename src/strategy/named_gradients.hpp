// Gradients submitted to the engine by name as backward produces them: a post hook on each
// parameter's AccumulateGrad submits its .grad (cast to the wire type when compressed) for an
// average across ranks; synchronize() submits what backward did not reach (zeros), waits, and
// writes the averages back. Shared by the Horovod strategy and DistributedOptimizer.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "mpitrain/engine/engine.hpp"
#include "grad_ready_hook.hpp"
#include "mpitrain/strategy/gradient_compression.hpp"

namespace mpitrain::detail {

class NamedGradients {
 public:
  /// Collective (host parameters get their .grad in the shared window). `params`: (name,
  /// parameter). A gradient is submitted after `passes_per_step` backward passes have reached it
  /// (local accumulation in between).
  NamedGradients(std::vector<std::pair<std::string, torch::Tensor>> params, Engine& engine, GradCompression compression,
                 const std::string& prefix, int passes_per_step);
  ~NamedGradients();
  NamedGradients(const NamedGradients&) = delete;
  NamedGradients& operator=(const NamedGradients&) = delete;

  /// Hooks submit only while enabled (the Trainer's synchronising backward passes).
  void set_enabled(bool on);
  /// Submits every gradient not yet submitted, waits for all, and leaves each .grad the average
  /// over ranks. Rethrows the first failure (after every handle has completed).
  void synchronize();
  int64_t submitted() const { return submitted_; }

 private:
  struct Param {
    std::string name;
    torch::Tensor tensor;
    int passes = 0;
    bool in_flight = false;
    torch::Tensor wire;  // what travels: the .grad itself, or its compressed / contiguous copy
    Engine::Handle handle;
  };
  void ready(size_t i);
  void submit(Param& p);  // with m_ held
  void place_grads_in_shared_window();

  Engine& engine_;
  GradCompression compression_;
  std::string prefix_;
  int passes_per_step_;
  std::vector<Param> params_;
  std::vector<std::unique_ptr<GradReadyHook>> hooks_;
  std::mutex m_;  // hooks may run on autograd worker threads
  bool enabled_ = true;
  int64_t submitted_ = 0;
};

}  // namespace mpitrain::detail
