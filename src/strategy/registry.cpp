#include "mpitrain/strategy/registry.hpp"

#include <map>
#include <mutex>

#include "mpitrain/errors.hpp"

namespace mpitrain {

namespace {
struct Table {
  std::mutex m;
  std::map<std::string, StrategyFactory> factories;
};
Table& table() {  // function-local: registration runs during static initialisation of other files
  static Table t;
  return t;
}
}  // namespace

bool register_strategy(const std::string& name, StrategyFactory factory) {
  auto& t = table();
  std::lock_guard<std::mutex> lock(t.m);
  if (!t.factories.emplace(name, std::move(factory)).second) throw ConfigError("strategy '" + name + "' is registered twice");
  return true;
}

std::vector<std::string> strategy_names() {
  auto& t = table();
  std::lock_guard<std::mutex> lock(t.m);
  std::vector<std::string> names;
  for (const auto& [k, v] : t.factories) names.push_back(k);
  return names;
}

std::unique_ptr<Strategy> create_strategy(const StrategySpec& spec) {
  StrategyFactory f;
  {
    auto& t = table();
    std::lock_guard<std::mutex> lock(t.m);
    auto it = t.factories.find(spec.name);
    if (it != t.factories.end()) f = it->second;
  }
  if (!f) {
    std::string known;
    for (const auto& n : strategy_names()) known += (known.empty() ? "" : ", ") + n;
    throw ConfigError("unknown strategy '" + spec.name + "' (available: " + (known.empty() ? "none" : known) + ")");
  }
  try {
    return f(spec.options.is_null() ? nlohmann::json::object() : spec.options);
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError("strategy '" + spec.name + "' options: " + e.what());
  }
}

}  // namespace mpitrain
