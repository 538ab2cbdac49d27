// A process-wide table of factories by name, filled during static initialisation (spawned workers
// are fresh processes of the same binary and find plug-ins by name). Strategies and callbacks
// keep one each; the error messages are theirs.
#pragma once
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "mpitrain/errors.hpp"

namespace mpitrain::detail {

template <class Factory>
class NamedRegistry {
 public:
  /// `kind` names the entries in messages: "strategy", "callback".
  explicit NamedRegistry(std::string kind) : kind_(std::move(kind)) {}
  /// ConfigError when the name is taken.
  void add(const std::string& name, Factory f) {
    std::lock_guard<std::mutex> lock(m_);
    if (!table_.emplace(name, std::move(f)).second) throw ConfigError(kind_ + " '" + name + "' is registered twice");
  }
  /// An empty Factory when the name is unknown.
  Factory find(const std::string& name) const {
    std::lock_guard<std::mutex> lock(m_);
    auto it = table_.find(name);
    return it == table_.end() ? Factory() : it->second;
  }
  std::vector<std::string> names() const {
    std::lock_guard<std::mutex> lock(m_);
    std::vector<std::string> out;
    for (const auto& [k, v] : table_) out.push_back(k);
    return out;
  }
  /// "a, b, c", or "none".
  std::string names_text() const {
    std::string s;
    for (const auto& n : names()) s += (s.empty() ? "" : ", ") + n;
    return s.empty() ? "none" : s;
  }

 private:
  std::string kind_;
  mutable std::mutex m_;
  std::map<std::string, Factory> table_;
};

}  // namespace mpitrain::detail
