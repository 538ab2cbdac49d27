// Horovod-style strategy (ray_lightning's HorovodRayStrategy): rank 0's parameters are broadcast at
// setup; each gradient is submitted to the engine's coordinator by name as its hook fires, so
// fusion and order are negotiated at run time (dynamic graphs, rank-dependent branches). Needs an
// Engine in Coordinated mode (the Trainer builds one for it). Registered as "horovod".
#pragma once
#include <nlohmann/json.hpp>

#include <memory>
#include <string>

#include "mpitrain/strategy/gradient_compression.hpp"
#include "mpitrain/strategy/strategy.hpp"

namespace mpitrain {

struct HorovodOptions {
  std::string compression = "none";  ///< none | fp16 | bf16 (GradCompression)
  /// The seeds' shape: num_hosts x num_slots workers instead of num_workers (0: not given). When
  /// given, their product must be the world size.
  int num_hosts = 0;
  int num_slots = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(HorovodOptions, compression, num_hosts, num_slots)

class Horovod final : public Strategy {
 public:
  /// ConfigError for an unknown compression or a partial / non-positive num_hosts x num_slots.
  explicit Horovod(HorovodOptions options = {});
  ~Horovod() override;
  const char* name() const override { return "horovod"; }
  bool needs_coordinator() const override { return true; }
  void setup(torch::nn::Module& model, torch::optim::Optimizer* optimizer, Engine& engine) override;
  void before_backward(bool sync) override;
  void after_backward() override;
  std::map<std::string, double> stats() const override;  ///< engine cycles, negotiations, cache hits, ...

 private:
  HorovodOptions options_;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mpitrain
