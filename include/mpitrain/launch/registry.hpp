// Static registry of entry points: spawned workers are fresh processes of the same binary, so
// they find the code to run by name (DESIGN §1).
#pragma once
#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

#include "mpitrain/launch/task_context.hpp"

namespace mpitrain {

/// Runs on every worker of a job; rank 0's return value becomes Result::value.
using EntryPoint = std::function<nlohmann::json(TaskContext& ctx, const nlohmann::json& payload)>;

/// Registers `fn` under `name`; a second registration of the same name throws ConfigError.
bool register_entry_point(const std::string& name, EntryPoint fn);
/// nullptr when unknown.
const EntryPoint* find_entry_point(const std::string& name);
std::vector<std::string> entry_point_names();

}  // namespace mpitrain

#define MPITRAIN_CONCAT_INNER(a, b) a##b
#define MPITRAIN_CONCAT(a, b) MPITRAIN_CONCAT_INNER(a, b)
/// MPITRAIN_REGISTER_ENTRY_POINT("name", fn) at namespace scope.
#define MPITRAIN_REGISTER_ENTRY_POINT(name, fn) \
  static const bool MPITRAIN_CONCAT(mpitrain_entry_registered_, __LINE__) = ::mpitrain::register_entry_point(name, fn)
