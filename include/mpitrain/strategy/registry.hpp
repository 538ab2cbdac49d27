// Strategies by name: spawned workers are fresh processes, so they rebuild the strategy from its
// name and JSON options, as they rebuild modules. Register a strategy in its own .cpp file:
//   MPITRAIN_REGISTER_STRATEGY("local_sgd", [](const nlohmann::json& o) {
//     return std::make_unique<LocalSgd>(o.value("every", 4)); });
// and select it with TrainerOptions::strategy = {"local_sgd", {{"every", 8}}} (or --strategy).
#pragma once
#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "mpitrain/strategy/strategy.hpp"

namespace mpitrain {

/// A strategy as the Trainer's options name it.
struct StrategySpec {
  std::string name = "ddp";
  nlohmann::json options = nlohmann::json::object();  ///< given to the factory (e.g. DDPOptions' fields)
};

/// Builds a strategy from its options; throws ConfigError naming a bad option.
using StrategyFactory = std::function<std::unique_ptr<Strategy>(const nlohmann::json& options)>;

/// Registers `factory` under `name`; ConfigError when the name is taken.
bool register_strategy(const std::string& name, StrategyFactory factory);
/// ConfigError "unknown strategy 'x' (available: ddp, ...)" for a name nobody registered.
std::unique_ptr<Strategy> create_strategy(const StrategySpec& spec);
std::vector<std::string> strategy_names();

}  // namespace mpitrain

#define MPITRAIN_STRATEGY_CONCAT_INNER(a, b) a##b
#define MPITRAIN_STRATEGY_CONCAT(a, b) MPITRAIN_STRATEGY_CONCAT_INNER(a, b)
/// MPITRAIN_REGISTER_STRATEGY("name", factory) at namespace scope.
#define MPITRAIN_REGISTER_STRATEGY(name, factory)                                                      \
  static const bool MPITRAIN_STRATEGY_CONCAT(mpitrain_strategy_registered_, __COUNTER__) = \
      ::mpitrain::register_strategy(name, factory)
