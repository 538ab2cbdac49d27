#include "mpitrain/tune/search_space.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <random>
#include <sstream>

#include "mpitrain/errors.hpp"

namespace mpitrain::tune {

namespace {
using nlohmann::json;

[[noreturn]] void bad(const std::string& key, const std::string& what) {
  throw ConfigError("search space: '" + key + "': " + what);
}

// [lo, hi] or [lo, hi, q] of numbers.
std::vector<double> bounds(const std::string& key, const std::string& dist, const json& v, size_t n) {
  if (!v.is_array() || v.size() != n)
    bad(key, dist + " needs [" + std::string(n == 3 ? "low, high, q" : "low, high") + "], got " + v.dump());
  std::vector<double> b;
  for (const auto& x : v) {
    if (!x.is_number()) bad(key, dist + " bounds must be numbers, got " + v.dump());
    b.push_back(x.get<double>());
  }
  if (!(b[0] <= b[1])) bad(key, dist + " low > high (" + v.dump() + ")");
  return b;
}

Domain parse_domain(const std::string& key, const json& v) {
  Domain d;
  if (!v.is_object()) {
    d.values = v;
    return d;
  }
  if (v.size() != 1) bad(key, "a domain is an object with one key (choice, grid_search, uniform, quniform, loguniform, randint), got " + v.dump());
  const std::string dist = v.begin().key();
  const json& arg = v.begin().value();
  if (dist == "choice" || dist == "grid_search") {
    if (!arg.is_array() || arg.empty()) bad(key, dist + " needs a non-empty list, got " + arg.dump());
    d.kind = dist == "choice" ? Domain::Kind::Choice : Domain::Kind::Grid;
    d.values = arg;
  } else if (dist == "uniform" || dist == "loguniform" || dist == "randint") {
    auto b = bounds(key, dist, arg, 2);
    d.low = b[0];
    d.high = b[1];
    if (dist == "loguniform" && !(b[0] > 0)) bad(key, "loguniform needs low > 0 (" + arg.dump() + ")");
    if (dist == "randint" && (b[0] != std::floor(b[0]) || b[1] != std::floor(b[1]) || b[0] == b[1]))
      bad(key, "randint needs integers low < high (high excluded), got " + arg.dump());
    d.kind = dist == "uniform" ? Domain::Kind::Uniform : dist == "loguniform" ? Domain::Kind::LogUniform : Domain::Kind::RandInt;
  } else if (dist == "quniform") {
    auto b = bounds(key, dist, arg, 3);
    if (!(b[2] > 0)) bad(key, "quniform needs q > 0 (" + arg.dump() + ")");
    d.kind = Domain::Kind::QUniform;
    d.low = b[0];
    d.high = b[1];
    d.q = b[2];
  } else {
    bad(key, "unknown distribution '" + dist + "' (choice, grid_search, uniform, quniform, loguniform, randint)");
  }
  return d;
}

json sample(const Domain& d, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  switch (d.kind) {
    case Domain::Kind::Constant: return d.values;
    case Domain::Kind::Grid: return d.values[0];  // replaced by the grid expansion
    case Domain::Kind::Choice: return d.values[size_t(rng() % d.values.size())];
    case Domain::Kind::Uniform: return d.low + (d.high - d.low) * u01(rng);
    case Domain::Kind::LogUniform: return std::exp(std::log(d.low) + (std::log(d.high) - std::log(d.low)) * u01(rng));
    case Domain::Kind::QUniform: {
      const double v = std::round((d.low + (d.high - d.low) * u01(rng)) / d.q) * d.q;
      return std::min(d.high, std::max(d.low, v));
    }
    case Domain::Kind::RandInt: {
      const auto lo = int64_t(d.low), span = int64_t(d.high) - lo;
      return lo + int64_t(rng() % uint64_t(span));
    }
  }
  return nullptr;
}
}  // namespace

SearchSpace SearchSpace::from_json(const json& space) {
  if (!space.is_object()) throw ConfigError("search space: must be a JSON object of hyperparameters, got " + space.dump());
  if (space.empty()) throw ConfigError("search space: no hyperparameters");
  SearchSpace s;
  for (auto it = space.begin(); it != space.end(); ++it) s.domains_.emplace_back(it.key(), parse_domain(it.key(), it.value()));
  return s;
}

SearchSpace SearchSpace::from_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError("search space file " + path + " cannot be read");
  std::stringstream text;
  text << in.rdbuf();
  const std::string s = text.str();
  try {
    return from_json(json::parse(s));
  } catch (const json::parse_error& e) {
    const size_t at = std::min(e.byte == 0 ? 0 : e.byte - 1, s.size());
    const size_t line = 1 + size_t(std::count(s.begin(), s.begin() + long(at), '\n'));
    const size_t nl = at == 0 ? std::string::npos : s.rfind('\n', at - 1);
    const size_t col = at - (nl == std::string::npos ? 0 : nl + 1) + 1;
    std::string what = e.what();
    const size_t p = what.find(": ", what.find("parse error"));
    throw ConfigError("search space file " + path + ":" + std::to_string(line) + ":" + std::to_string(col) +
                      ": JSON error: " + (p == std::string::npos ? what : what.substr(p + 2)));
  }
}

std::vector<json> SearchSpace::generate(int num_samples, uint64_t seed) const {
  if (num_samples < 1) throw ConfigError("num_samples must be at least 1 (got " + std::to_string(num_samples) + ")");
  // Grid combinations: the last grid key varies fastest (Tune's order).
  std::vector<json> grid(1, json::object());
  for (const auto& [key, d] : domains_) {
    if (d.kind != Domain::Kind::Grid) continue;
    std::vector<json> next;
    for (const auto& g : grid)
      for (const auto& v : d.values) {
        json c = g;
        c[key] = v;
        next.push_back(std::move(c));
      }
    grid = std::move(next);
  }
  std::mt19937_64 rng(seed);
  std::vector<json> trials;
  for (int s = 0; s < num_samples; ++s)
    for (const auto& g : grid) {
      json c = json::object();
      for (const auto& [key, d] : domains_) c[key] = d.kind == Domain::Kind::Grid ? g.at(key) : sample(d, rng);
      trials.push_back(std::move(c));
    }
  return trials;
}

}  // namespace mpitrain::tune
