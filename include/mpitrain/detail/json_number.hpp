// JSON has no NaN or infinity (nlohmann writes them as null, which then fails to read back as a
// number): metrics and scores that travel between processes or in checkpoints are written as
// "nan" / "inf" / "-inf".
#pragma once
#include <cmath>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "mpitrain/errors.hpp"

namespace mpitrain::detail {

inline nlohmann::json json_number(double v) {
  if (std::isfinite(v)) return v;
  return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
}

inline double number_from_json(const nlohmann::json& j) {
  if (j.is_number()) return j.get<double>();
  if (j == "nan") return std::numeric_limits<double>::quiet_NaN();
  if (j == "inf") return std::numeric_limits<double>::infinity();
  if (j == "-inf") return -std::numeric_limits<double>::infinity();
  throw CheckpointError("expected a number in the trainer state, got " + j.dump());
}

/// A number as json_number wrote it, or as older writers did (null for NaN); NaN for anything
/// else. For values that arrive from other processes (metrics), where throwing would lose the run.
inline double number_or_nan(const nlohmann::json& j) {
  if (j.is_number()) return j.get<double>();
  if (j == "inf") return std::numeric_limits<double>::infinity();
  if (j == "-inf") return -std::numeric_limits<double>::infinity();
  return std::numeric_limits<double>::quiet_NaN();
}

inline nlohmann::json json_numbers(const std::map<std::string, double>& m) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [k, v] : m) out[k] = json_number(v);
  return out;
}

inline std::map<std::string, double> numbers_from_json(const nlohmann::json& j) {
  std::map<std::string, double> out;
  for (const auto& [k, v] : j.items()) out[k] = number_from_json(v);
  return out;
}

}  // namespace mpitrain::detail
