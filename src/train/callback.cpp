#include "mpitrain/train/callback.hpp"

#include "mpitrain/detail/named_registry.hpp"

namespace mpitrain {

namespace {
detail::NamedRegistry<CallbackFactory>& table() {  // function-local: filled during static initialisation
  static detail::NamedRegistry<CallbackFactory> t("callback");
  return t;
}
}  // namespace

bool register_callback(const std::string& name, CallbackFactory factory) {
  table().add(name, std::move(factory));
  return true;
}

bool callback_registered(const std::string& name) { return bool(table().find(name)); }

std::shared_ptr<Callback> create_callback(const CallbackSpec& spec) {
  const CallbackFactory f = table().find(spec.name);
  if (!f) throw ConfigError("unknown callback '" + spec.name + "' (registered: " + table().names_text() + ")");
  try {
    return f(spec.options.is_null() ? nlohmann::json::object() : spec.options);
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError("callback '" + spec.name + "' options: " + e.what());
  }
}

}  // namespace mpitrain
