#include "mpitrain/strategy/registry.hpp"

#include "mpitrain/detail/named_registry.hpp"

namespace mpitrain {

namespace {
detail::NamedRegistry<StrategyFactory>& table() {  // function-local: filled during static initialisation
  static detail::NamedRegistry<StrategyFactory> t("strategy");
  return t;
}
}  // namespace

bool register_strategy(const std::string& name, StrategyFactory factory) {
  table().add(name, std::move(factory));
  return true;
}

std::vector<std::string> strategy_names() { return table().names(); }

std::unique_ptr<Strategy> create_strategy(const StrategySpec& spec) {
  const StrategyFactory f = table().find(spec.name);
  if (!f) throw ConfigError("unknown strategy '" + spec.name + "' (available: " + table().names_text() + ")");
  try {
    return f(spec.options.is_null() ? nlohmann::json::object() : spec.options);
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError("strategy '" + spec.name + "' options: " + e.what());
  }
}

}  // namespace mpitrain
