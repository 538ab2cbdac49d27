#include "status_table.hpp"

#include <cstdio>
#include <fstream>

#include "mpitrain/tune/tune_report.hpp"

namespace mpitrain::tune::detail {

namespace {
using nlohmann::json;

// Reports so far and the last one.
std::pair<int64_t, json> progress(const std::string& file) {
  std::ifstream in(file);
  std::string line;
  int64_t n = 0;
  json last;
  while (std::getline(in, line)) {
    try {
      last = json::parse(line);
      ++n;
    } catch (const json::exception&) {  // a line being written
    }
  }
  return {n, last};
}

std::string number(const json& v) {
  if (!v.is_number()) return v.is_null() ? "-" : v.dump();
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.5g", v.get<double>());
  return buf;
}
}  // namespace

std::string status_table(const std::string& dir, const SweepPlan& plan, const std::map<std::string, std::string>& status,
                         size_t width) {
  std::map<std::string, int> counts;
  std::string rows;
  const std::string metric = plan.metric.empty() ? "metric" : plan.metric;
  char line[256];
  std::snprintf(line, sizeof line, "%-8s %-9s %5s %12s  %s\n", "trial", "status", "iter", metric.c_str(), "config");
  rows += line;
  for (const auto& t : plan.trials) {
    const std::string id = t.at("id");
    const auto it = status.find(id);
    const std::string st = it == status.end() ? "pending" : it->second;
    ++counts[st];
    const auto [iters, last] = progress(trial_dir(dir, id) + "/progress.jsonl");
    std::string row(128 + t.at("config").dump().size(), '\0');
    const int n = std::snprintf(row.data(), row.size(), "%-8s %-9s %5lld %12s  %s", id.c_str(), st.c_str(),
                                (long long)iters, number(last.is_object() ? last.value(metric, json()) : json()).c_str(),
                                t.at("config").dump().c_str());
    row.resize(size_t(std::max(0, n)));
    if (row.size() > width) row = row.substr(0, width - 3) + "...";
    rows += row + "\n";
  }
  std::string head = "== Status == " + dir + ":";
  for (const char* s : {"running", "pending", "finished", "stopped", "failed"})
    head += " " + std::to_string(counts[s]) + " " + s + (s == std::string("failed") ? "" : ",");
  return head + "\n" + rows;
}

}  // namespace mpitrain::tune::detail
