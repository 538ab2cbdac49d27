#include "mpitrain/train/module.hpp"

#include <mutex>

#include "mpitrain/errors.hpp"
#include "mpitrain/train/metrics.hpp"

namespace mpitrain {

void Module::log(const std::string& name, double value, LogOptions o, int64_t batch_size) {
  if (sink_) sink_->add(name, value, double(std::max<int64_t>(batch_size, 1)), o);
}

void Module::log(const std::string& name, const torch::Tensor& value, LogOptions o, int64_t batch_size) {
  if (value.numel() != 1)
    throw ConfigError("log('" + name + "'): expected a scalar, got a tensor of " + std::to_string(value.numel()) + " elements");
  log(name, value.item<double>(), o, batch_size);
}

namespace {
struct Registry {
  std::mutex m;
  std::map<std::string, ModuleFactory> factories;
  std::map<std::type_index, std::string> names;
};
Registry& registry() {
  static Registry r;
  return r;
}
}  // namespace

bool register_module(const std::string& name, std::type_index type, ModuleFactory factory) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.m);
  if (!r.factories.emplace(name, std::move(factory)).second) throw ConfigError("module '" + name + "' is registered twice");
  r.names.emplace(type, name);
  return true;
}

std::shared_ptr<Module> create_module(const std::string& name, const Config& config) {
  ModuleFactory f;
  std::string known;
  {
    auto& r = registry();
    std::lock_guard<std::mutex> lock(r.m);
    auto it = r.factories.find(name);
    if (it != r.factories.end()) f = it->second;
    for (auto& [k, v] : r.factories) known += (known.empty() ? "" : ", ") + k;
  }
  if (!f) throw ConfigError("unknown module '" + name + "' (registered: " + (known.empty() ? "none" : known) + ")");
  return f(config);
}

std::string registered_module_name(std::type_index type) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.m);
  auto it = r.names.find(type);
  if (it == r.names.end()) throw ConfigError("module type is not registered: add MPITRAIN_REGISTER_MODULE(YourModule)");
  return it->second;
}

}  // namespace mpitrain
