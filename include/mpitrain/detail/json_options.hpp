// Option structs <-> JSON, strictly: the struct's defaults (converted to JSON) are the schema, so
// a misspelt key or a value of the wrong type is a ConfigError naming it, instead of being
// ignored or failing deep inside nlohmann. Each option struct is listed once, with
// NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT; options_from_json<T> adds the checks.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

#include "mpitrain/errors.hpp"

namespace mpitrain::detail {

inline const char* json_kind(const nlohmann::json& j) {
  if (j.is_boolean()) return "a boolean";
  if (j.is_number_integer() || j.is_number_unsigned()) return "an integer";
  if (j.is_number()) return "a number";
  if (j.is_string()) return "a string";
  if (j.is_array()) return "a list";
  if (j.is_object()) return "an object";
  return "null";
}

/// Throws ConfigError for a key of `given` that `defaults` does not have, or a value whose kind
/// differs from the default's (an integer where a number is expected is fine). Objects whose
/// default is empty, and lists, are free-form (a strategy's options, a list of callbacks).
inline void check_options(const nlohmann::json& given, const nlohmann::json& defaults, const std::string& what,
                          const std::string& path = "") {
  if (!given.is_object()) throw ConfigError(what + (path.empty() ? "" : " '" + path + "'") + " must be an object, got " + given.dump());
  for (const auto& [key, value] : given.items()) {
    const std::string name = path.empty() ? key : path + "." + key;
    if (!defaults.contains(key)) throw ConfigError(what + ": unknown option '" + name + "'");
    const auto& d = defaults[key];
    const bool same = (d.is_number_float() && value.is_number()) ||
                      ((d.is_number_integer() || d.is_number_unsigned()) &&
                       (value.is_number_integer() || value.is_number_unsigned())) ||
                      (d.is_string() && value.is_string()) || (d.is_boolean() && value.is_boolean()) ||
                      (d.is_array() && value.is_array()) || (d.is_object() && value.is_object()) || d.is_null();
    if (!same)
      throw ConfigError(what + ": option '" + name + "' must be " + json_kind(d) + ", got " + value.dump());
    if (d.is_object() && !d.empty()) check_options(value, d, what, name);
  }
}

/// Throws ConfigError for a number of `given` that did not survive the conversion into the
/// struct (`back` is the struct as JSON again): a value out of range of its field (2^31 in an int).
inline void check_round_trip(const nlohmann::json& given, const nlohmann::json& back, const std::string& what,
                             const std::string& path = "") {
  for (const auto& [key, value] : given.items()) {
    if (!back.contains(key)) continue;
    const std::string name = path.empty() ? key : path + "." + key;
    if (value.is_object() && back[key].is_object()) check_round_trip(value, back[key], what, name);
    else if (value.is_number() && back[key] != value)
      throw ConfigError(what + ": option '" + name + "' is out of range (got " + value.dump() + ")");
  }
}

/// T from JSON (missing keys keep T's defaults), checked as above. `what` names it in errors.
template <class T>
T options_from_json(const nlohmann::json& j, const std::string& what) {
  const T defaults{};
  if (j.is_null()) return defaults;
  check_options(j, nlohmann::json(defaults), what);
  T out;
  try {
    out = j.get<T>();
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(what + ": " + e.what());
  }
  check_round_trip(j, nlohmann::json(out), what);
  return out;
}

}  // namespace mpitrain::detail
