#include "checkpoint_manager.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>

#include "hdf5_io/checkpoint_file.hpp"
#include "mpitrain/detail/json_number.hpp"
#include "mpitrain/errors.hpp"

namespace mpitrain::loop {

void to_json(nlohmann::json& j, const CheckpointConfig& c) {
  j = {{"num_to_keep", c.num_to_keep},
       {"checkpoint_score_attribute", c.checkpoint_score_attribute},
       {"checkpoint_score_order", c.checkpoint_score_order}};
}

void from_json(const nlohmann::json& j, CheckpointConfig& c) {
  c.num_to_keep = j.value("num_to_keep", -1);
  c.checkpoint_score_attribute = j.value("checkpoint_score_attribute", "");
  c.checkpoint_score_order = j.value("checkpoint_score_order", "max");
}

void validate(const CheckpointConfig& c) {
  if (c.num_to_keep == 0 || c.num_to_keep < -1)
    throw ConfigError("checkpoint_config.num_to_keep must be at least 1, or -1 to keep every checkpoint (got " +
                      std::to_string(c.num_to_keep) + ")");
  if (c.checkpoint_score_order != "max" && c.checkpoint_score_order != "min")
    throw ConfigError("checkpoint_config.checkpoint_score_order must be \"max\" or \"min\" (got \"" +
                      c.checkpoint_score_order + "\")");
}

namespace detail {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {
std::string manifest_path(const std::string& dir) { return dir + "/checkpoints.json"; }
}  // namespace

CheckpointManager::CheckpointManager(std::string run_dir, CheckpointConfig config)
    : run_dir_(std::move(run_dir)), config_(std::move(config)) {
  validate(config_);
  std::error_code ec;
  if (!fs::exists(manifest_path(run_dir_), ec)) return;
  std::ifstream in(manifest_path(run_dir_));
  if (!in) throw CheckpointError("cannot open " + manifest_path(run_dir_));
  try {
    const json j = json::parse(in);
    next_index_ = j.at("next_index");
    latest_ = j.at("latest");
    for (const auto& e : j.at("checkpoints"))
      entries_.push_back({e.at("index"), e.at("file"), mpitrain::detail::numbers_from_json(e.at("metrics"))});
  } catch (const std::exception& e) {
    throw CheckpointError("cannot read " + manifest_path(run_dir_) + ": " + e.what());
  }
}

std::string CheckpointManager::next_path() const {
  char name[64];
  std::snprintf(name, sizeof name, "checkpoint_%06lld.h5", static_cast<long long>(next_index_));
  return run_dir_ + "/" + name;
}

void CheckpointManager::check_metrics(const std::map<std::string, double>& metrics) const {
  const std::string& attr = config_.checkpoint_score_attribute;
  if (attr.empty() || metrics.count(attr)) return;
  std::string names;
  for (const auto& [k, v] : metrics) names += (names.empty() ? "" : ", ") + k;
  throw ConfigError("checkpoint_score_attribute '" + attr + "' was not reported with the checkpoint (reported: " +
                    (names.empty() ? "no metrics" : names) + ")");
}

// a ranks before b: by score (a NaN or missing score last: an earlier run of the directory may
// have ranked by another metric), then newer first.
bool CheckpointManager::better(const ManifestEntry& a, const ManifestEntry& b) const {
  const std::string& attr = config_.checkpoint_score_attribute;
  if (!attr.empty()) {
    auto score = [&](const ManifestEntry& e) {
      auto it = e.metrics.find(attr);
      return it == e.metrics.end() ? std::numeric_limits<double>::quiet_NaN() : it->second;
    };
    const double x = score(a), y = score(b);
    if (std::isnan(x) != std::isnan(y)) return std::isnan(y);
    if (x != y && !std::isnan(x)) return config_.checkpoint_score_order == "max" ? x > y : x < y;
  }
  return a.index > b.index;
}

std::vector<ManifestEntry> CheckpointManager::best() const {
  std::vector<ManifestEntry> v = entries_;
  std::stable_sort(v.begin(), v.end(), [&](const ManifestEntry& a, const ManifestEntry& b) { return better(a, b); });
  return v;
}

std::optional<ManifestEntry> CheckpointManager::latest() const {
  for (const auto& e : entries_)
    if (e.index == latest_) return e;
  return std::nullopt;
}

void CheckpointManager::add(const std::map<std::string, double>& metrics) {
  check_metrics(metrics);
  const std::string file = fs::path(next_path()).filename().string();
  CheckpointManager next = *this;  // committed only once the manifest and `latest` are on disk
  next.entries_.push_back({next_index_, file, metrics});
  next.latest_ = next.next_index_++;
  std::vector<ManifestEntry> removed;
  if (config_.num_to_keep > 0) {
    const std::vector<ManifestEntry> ranked = next.best();
    std::set<int64_t> keep;
    for (size_t i = 0; i < ranked.size() && i < size_t(config_.num_to_keep); ++i) keep.insert(ranked[i].index);
    keep.insert(next.latest_);  // a relaunch resumes from it
    std::vector<ManifestEntry> kept;
    for (auto& e : next.entries_) (keep.count(e.index) ? kept : removed).push_back(e);
    next.entries_ = std::move(kept);
  }
  next.write_manifest();
  try {
    hdf5_io::write_latest(run_dir_, file);
  } catch (const hdf5_io::CheckpointError& e) {
    throw CheckpointError(e.what());
  }
  *this = std::move(next);
  for (const auto& e : removed) {  // only once nothing names them any more
    std::error_code ec;
    fs::remove(path_of(e), ec);
  }
}

void CheckpointManager::write_manifest() const {
  json list = json::array();
  for (const auto& e : entries_)
    list.push_back({{"index", e.index}, {"file", e.file}, {"metrics", mpitrain::detail::json_numbers(e.metrics)}});
  const json j = {{"next_index", next_index_}, {"latest", latest_}, {"checkpoints", list}};
  const std::string path = manifest_path(run_dir_), tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump(1) << "\n";
    if (!out.flush()) throw CheckpointError("cannot write " + tmp);
  }
  try {
    hdf5_io::fsync_path(tmp);
  } catch (const hdf5_io::CheckpointError& e) {
    throw CheckpointError(e.what());
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw CheckpointError("cannot rename " + tmp + " to " + path + ": " + ec.message());
}

}  // namespace detail
}  // namespace mpitrain::loop
