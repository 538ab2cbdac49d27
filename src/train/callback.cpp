#include "mpitrain/train/callback.hpp"

#include <mutex>

#include "mpitrain/errors.hpp"

namespace mpitrain {

namespace {
struct Table {
  std::mutex m;
  std::map<std::string, CallbackFactory> factories;
};
Table& table() {  // function-local: registration runs during static initialisation of other files
  static Table t;
  return t;
}
}  // namespace

bool register_callback(const std::string& name, CallbackFactory factory) {
  auto& t = table();
  std::lock_guard<std::mutex> lock(t.m);
  if (!t.factories.emplace(name, std::move(factory)).second) throw ConfigError("callback '" + name + "' is registered twice");
  return true;
}

bool callback_registered(const std::string& name) {
  auto& t = table();
  std::lock_guard<std::mutex> lock(t.m);
  return t.factories.count(name) > 0;
}

std::shared_ptr<Callback> create_callback(const CallbackSpec& spec) {
  CallbackFactory f;
  std::string known;
  {
    auto& t = table();
    std::lock_guard<std::mutex> lock(t.m);
    auto it = t.factories.find(spec.name);
    if (it != t.factories.end()) f = it->second;
    for (const auto& [k, v] : t.factories) known += (known.empty() ? "" : ", ") + k;
  }
  if (!f) throw ConfigError("unknown callback '" + spec.name + "' (registered: " + (known.empty() ? "none" : known) + ")");
  try {
    return f(spec.options.is_null() ? nlohmann::json::object() : spec.options);
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError("callback '" + spec.name + "' options: " + e.what());
  }
}

}  // namespace mpitrain
