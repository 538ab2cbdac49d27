// A sweep's results from its directory: results.csv / results.json and the best trial.
#include <cmath>
#include <filesystem>
#include <fstream>

#include "mpitrain/detail/json_number.hpp"
#include "mpitrain/errors.hpp"
#include "mpitrain/tune/sweep.hpp"
#include "mpitrain/tune/tune_report.hpp"

namespace mpitrain::tune {

namespace {
using nlohmann::json;

std::string csv_field(const json& v) {
  std::string s = v.is_string() ? v.get<std::string>() : v.dump();
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

// Each metric's best over the reports (NaN never best); `higher` says which way is better for `metric`.
void fold(TrialResult& r, const json& rec, const std::string& metric, bool higher) {
  for (auto it = rec.begin(); it != rec.end(); ++it) {
    if (it.key() == "time_s" || it.key() == "epoch" || it.key() == "step") continue;  // not metrics
    const double v = detail::number_or_nan(it.value());
    const bool up = it.key() == metric ? higher : it.key().find("acc") != std::string::npos;
    if (!r.best.contains(it.key())) {
      r.best[it.key()] = detail::json_number(v);
      continue;
    }
    const double b = detail::number_or_nan(r.best[it.key()]);
    if (std::isfinite(v) && (!std::isfinite(b) || (up ? v > b : v < b))) r.best[it.key()] = v;
  }
}
}  // namespace

std::vector<TrialResult> collect(const std::string& dir) {
  const SweepPlan plan = load_plan(dir);
  std::vector<TrialResult> out;
  for (const auto& t : plan.trials) {
    TrialResult r;
    r.id = t.at("id");
    r.config = t.at("config");
    r.last = json::object();
    r.best = json::object();
    const std::string tdir = trial_dir(dir, r.id);
    std::ifstream st_in(tdir + "/status.json");
    json st;
    try {
      st = json::parse(st_in);
    } catch (const json::exception&) {
      st = json::object();
    }
    r.status = st.value("status", "pending");
    r.error = st.value("error", "");
    r.wall_s = st.value("wall_s", 0.0);
    std::ifstream in(tdir + "/progress.jsonl");
    std::string line;
    while (std::getline(in, line)) {
      json rec;
      try {
        rec = json::parse(line);
      } catch (const json::exception&) {
        continue;  // a line cut by a kill
      }
      ++r.iterations;
      r.last = rec;
      fold(r, rec, plan.metric, plan.mode == "max");
    }
    std::ifstream latest(tdir + "/checkpoints/latest");
    std::string name;
    if (latest >> name) r.checkpoint = tdir + "/checkpoints/" + name;
    out.push_back(std::move(r));
  }
  // results.json and results.csv (config keys and the metrics seen, as columns)
  json all = json::array();
  std::vector<std::string> keys, metrics;
  for (const auto& r : out) {
    all.push_back({{"trial", r.id}, {"status", r.status}, {"config", r.config}, {"iterations", r.iterations},
                   {"wall_s", r.wall_s}, {"last", r.last}, {"best", r.best}, {"checkpoint", r.checkpoint},
                   {"error", r.error}});
    for (auto it = r.config.begin(); it != r.config.end(); ++it)
      if (std::find(keys.begin(), keys.end(), it.key()) == keys.end()) keys.push_back(it.key());
    for (auto it = r.last.begin(); it != r.last.end(); ++it)
      if (it.key() != "time_s" && std::find(metrics.begin(), metrics.end(), it.key()) == metrics.end())
        metrics.push_back(it.key());
  }
  std::ofstream(dir + "/results.json") << all.dump(2) << "\n";
  std::ofstream csv(dir + "/results.csv");
  csv << "trial,status,iterations,wall_s";
  for (const auto& k : keys) csv << ",config/" << k;
  for (const auto& m : metrics) csv << ",last/" << m << ",best/" << m;
  csv << ",checkpoint,error\n";
  for (const auto& r : out) {
    csv << r.id << "," << r.status << "," << r.iterations << "," << r.wall_s;
    for (const auto& k : keys) csv << "," << (r.config.contains(k) ? csv_field(r.config[k]) : "");
    for (const auto& m : metrics)
      csv << "," << (r.last.contains(m) ? csv_field(r.last[m]) : "") << "," << (r.best.contains(m) ? csv_field(r.best[m]) : "");
    csv << "," << csv_field(r.checkpoint) << "," << csv_field(r.error) << "\n";
  }
  return out;
}

const TrialResult* best_trial(const std::vector<TrialResult>& results, const std::string& metric, const std::string& mode) {
  const TrialResult* best = nullptr;
  double bv = 0;
  for (const auto& r : results) {
    if (r.status == "failed" || !r.last.contains(metric)) continue;
    const double v = detail::number_or_nan(r.last[metric]);
    if (!std::isfinite(v)) continue;  // NaN ranks last
    if (!best || (mode == "max" ? v > bv : v < bv)) {
      best = &r;
      bv = v;
    }
  }
  return best;
}

}  // namespace mpitrain::tune
