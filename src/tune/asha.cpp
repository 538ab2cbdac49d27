#include "mpitrain/tune/asha.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "mpitrain/errors.hpp"

namespace mpitrain::tune {

void AshaOptions::validate() const {
  auto need = [](bool ok, const std::string& what) {
    if (!ok) throw ConfigError("ASHA: " + what);
  };
  need(!metric.empty(), "metric must be set");
  need(mode == "min" || mode == "max", "mode must be min or max (got '" + mode + "')");
  need(time_attr == "epoch" || time_attr == "step", "time_attr must be epoch or step (got '" + time_attr + "')");
  need(grace_period >= 1, "grace_period must be at least 1");
  need(reduction_factor > 1, "reduction_factor must be above 1");
  need(max_t >= grace_period, "max_t must be at least grace_period");
}

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double pos = q / 100.0 * double(v.size() - 1);
  const size_t lo = size_t(std::floor(pos)), hi = std::min(v.size() - 1, lo + 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - double(lo));
}

Asha::Asha(AshaOptions options, std::string dir) : o_(std::move(options)), dir_(std::move(dir)) {
  o_.validate();
  std::filesystem::create_directories(dir_);
}

std::vector<double> Asha::milestones() const {
  std::vector<double> m;
  for (double t = o_.grace_period; t <= o_.max_t + 1e-9; t *= o_.reduction_factor) m.push_back(t);
  return m;
}

std::string Asha::rung_file(double milestone) const {
  char name[64];
  std::snprintf(name, sizeof name, "rung_%g.jsonl", milestone);
  return dir_ + "/" + name;
}

std::vector<double> Asha::recorded(double milestone) const {
  std::vector<double> v;
  std::ifstream in(rung_file(milestone));
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line.back() != '}') continue;  // a line being written (never without the lock)
    try {
      v.push_back(nlohmann::json::parse(line).at("score").get<double>());
    } catch (const std::exception&) {
    }
  }
  return v;
}

Asha::Decision Asha::on_result(const std::string& trial, double t, double value) const {
  // Larger is better from here on; NaN/inf rank last.
  double score = o_.mode == "max" ? value : -value;
  if (!std::isfinite(score)) score = -1e308;
  Decision d = t >= o_.max_t ? Decision::Stop : Decision::Continue;
  const auto ms = milestones();
  for (auto it = ms.rbegin(); it != ms.rend(); ++it) {  // the highest rung reached
    if (t < *it) continue;
    const std::string file = rung_file(*it);
    const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_APPEND, 0644);
    if (fd < 0) throw Error("ASHA: cannot open rung record " + file);
    ::flock(fd, LOCK_EX);  // read the rung and append to it as one step
    std::vector<double> prior;
    bool seen = false;
    {
      std::ifstream in(file);
      std::string line;
      while (std::getline(in, line)) try {
          auto j = nlohmann::json::parse(line);
          if (j.at("trial") == trial) seen = true;
          else prior.push_back(j.at("score").get<double>());
        } catch (const std::exception&) {
        }
    }
    if (!seen) {
      if (!prior.empty() && score < percentile(prior, (1 - 1 / o_.reduction_factor) * 100)) d = Decision::Stop;
      const std::string rec = nlohmann::json{{"trial", trial}, {"t", t}, {"score", score}}.dump() + "\n";
      if (::write(fd, rec.data(), rec.size()) != ssize_t(rec.size())) {
        ::close(fd);
        throw Error("ASHA: cannot append to " + file);
      }
    }
    ::close(fd);  // releases the lock
    break;
  }
  return d;
}

}  // namespace mpitrain::tune
