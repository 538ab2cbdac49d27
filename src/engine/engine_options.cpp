#include "mpitrain/engine/engine_options.hpp"

#include <cmath>
#include <cstdlib>
#include <string>

#include "mpitrain/errors.hpp"

namespace mpitrain {

namespace {
const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

// A non-negative number, all of the text.
double env_number(const char* name, const char* text) {
  char* end = nullptr;
  const double v = std::strtod(text, &end);
  if (end == text || *end != '\0' || !std::isfinite(v) || v < 0)
    throw ConfigError(std::string(name) + "='" + text + "': expected a non-negative number");
  return v;
}

std::chrono::milliseconds seconds_env(const char* name, const char* text) {
  return std::chrono::milliseconds(int64_t(std::llround(env_number(name, text) * 1000)));
}
}  // namespace

EngineOptions EngineOptions::from_env(EngineOptions o) {
  if (const char* v = env("MPITRAIN_ENGINE_MODE")) {
    const std::string s = v;
    if (s == "fifo") o.mode = EngineMode::Fifo;
    else if (s == "coordinated") o.mode = EngineMode::Coordinated;
    else throw ConfigError("MPITRAIN_ENGINE_MODE='" + s + "': expected fifo or coordinated");
  }
  if (const char* v = env("MPITRAIN_FUSION_THRESHOLD")) o.fusion_threshold = size_t(env_number("MPITRAIN_FUSION_THRESHOLD", v));
  if (const char* v = env("MPITRAIN_CYCLE_TIME_MS"))
    o.cycle_time = std::chrono::microseconds(int64_t(std::llround(env_number("MPITRAIN_CYCLE_TIME_MS", v) * 1000)));
  if (const char* v = env("MPITRAIN_CACHE_CAPACITY")) o.cache_capacity = size_t(env_number("MPITRAIN_CACHE_CAPACITY", v));
  if (const char* v = env("MPITRAIN_STALL_CHECK_TIME_S")) o.stall_check = seconds_env("MPITRAIN_STALL_CHECK_TIME_S", v);
  if (const char* v = env("MPITRAIN_STALL_SHUTDOWN_TIME_S"))
    o.stall_shutdown = seconds_env("MPITRAIN_STALL_SHUTDOWN_TIME_S", v);
  if (const char* v = env("MPITRAIN_TIMELINE")) o.timeline = v;
  o.validate();
  return o;
}

EngineOptions EngineOptions::from_env() { return from_env(EngineOptions{}); }

void EngineOptions::validate() const {
  if (fusion_threshold < 4096 || fusion_threshold > (size_t(1) << 34))
    throw ConfigError("engine: fusion threshold " + std::to_string(fusion_threshold) + " bytes (4 KiB to 16 GiB)");
  if (cycle_time.count() < 0 || cycle_time > std::chrono::seconds(10))
    throw ConfigError("engine: cycle time " + std::to_string(cycle_time.count()) + " us (0 to 10 s)");
  if (cache_capacity > (size_t(1) << 20))
    throw ConfigError("engine: cache capacity " + std::to_string(cache_capacity) + " (at most 1048576)");
  if (stall_check.count() < 0 || stall_shutdown.count() < 0)
    throw ConfigError("engine: stall times must not be negative");
  if (stall_shutdown.count() > 0 && stall_check.count() > 0 && stall_shutdown < stall_check)
    throw ConfigError("engine: stall shutdown time (" + std::to_string(stall_shutdown.count()) +
                      " ms) is shorter than the stall check time (" + std::to_string(stall_check.count()) + " ms)");
}

}  // namespace mpitrain
