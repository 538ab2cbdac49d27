#include "mpitrain/launch/registry.hpp"

#include <map>
#include <mutex>

#include "mpitrain/errors.hpp"

namespace mpitrain {

namespace {
// Function-local statics: registration runs during static initialisation of other files.
std::map<std::string, EntryPoint>& table() {
  static std::map<std::string, EntryPoint> t;
  return t;
}
std::mutex& table_mutex() {
  static std::mutex m;
  return m;
}
}  // namespace

bool register_entry_point(const std::string& name, EntryPoint fn) {
  std::lock_guard<std::mutex> lock(table_mutex());
  if (!table().emplace(name, std::move(fn)).second)
    throw ConfigError("entry point '" + name + "' is registered twice");
  return true;
}

const EntryPoint* find_entry_point(const std::string& name) {
  std::lock_guard<std::mutex> lock(table_mutex());
  auto it = table().find(name);
  return it == table().end() ? nullptr : &it->second;
}

std::vector<std::string> entry_point_names() {
  std::lock_guard<std::mutex> lock(table_mutex());
  std::vector<std::string> names;
  for (auto& [k, v] : table()) names.push_back(k);
  return names;
}

}  // namespace mpitrain
