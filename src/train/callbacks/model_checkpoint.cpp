#include "mpitrain/train/callbacks/model_checkpoint.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>

#include "hdf5_io/checkpoint_file.hpp"
#include "mpitrain/detail/json_number.hpp"
#include "mpitrain/detail/json_options.hpp"
#include "mpitrain/errors.hpp"

namespace mpitrain {

namespace fs = std::filesystem;

nlohmann::json ModelCheckpointOptions::to_json() const { return *this; }

ModelCheckpointOptions ModelCheckpointOptions::from_json(const nlohmann::json& j) {
  return detail::options_from_json<ModelCheckpointOptions>(j, "checkpoint options");
}

void ModelCheckpointOptions::validate() const {
  if (every_n_epochs < 0) throw ConfigError("checkpoint every_n_epochs must be >= 0");
  if (every_n_train_steps < 0) throw ConfigError("checkpoint every_n_train_steps must be >= 0");
  if (mode != "min" && mode != "max") throw ConfigError("checkpoint mode must be min or max (got '" + mode + "')");
  if (save_top_k < -1) throw ConfigError("checkpoint save_top_k must be >= -1");
  if (keep_last_k < -1 || keep_last_k == 0) throw ConfigError("checkpoint keep_last_k must be -1 or >= 1");
}

ModelCheckpoint::ModelCheckpoint(ModelCheckpointOptions options, std::string dir)
    : o_(std::move(options)), dir_(std::move(dir)) {}

bool ModelCheckpoint::due_after_step(int64_t step) const {
  return o_.enabled && o_.every_n_train_steps > 0 && step % o_.every_n_train_steps == 0;
}

bool ModelCheckpoint::due_after_epoch(int64_t epoch) const {
  return o_.enabled && o_.every_n_epochs > 0 && (epoch + 1) % o_.every_n_epochs == 0;
}

void ModelCheckpoint::on_train_batch_end(FitLoopView& loop, int64_t batch_idx, bool stepped) {
  if (stepped && due_after_step(loop.global_step())) loop.save_checkpoint(loop.epoch(), batch_idx + 1, std::nullopt);
}

void ModelCheckpoint::on_train_epoch_end(FitLoopView& loop) {
  const bool fresh = loop.last_saved_step() != loop.global_step();
  if (loop.stopped_at_batch() >= 0) {  // inside the epoch: a resumed run with a larger max_steps goes on from there
    if (enabled() && fresh) loop.save_checkpoint(loop.epoch(), loop.stopped_at_batch(), std::nullopt);
    return;
  }
  if (!due_after_epoch(loop.epoch()) && !(loop.last_epoch() && enabled() && fresh)) return;
  std::optional<double> score;
  if (!o_.monitor.empty()) {
    auto f = loop.epoch_metrics().find(o_.monitor);
    if (f == loop.epoch_metrics().end())
      throw ConfigError("ModelCheckpoint: metric '" + o_.monitor + "' was not logged this epoch");
    score = f->second;
  }
  loop.save_checkpoint(loop.epoch() + 1, 0, score);
}

std::string ModelCheckpoint::file_name(int64_t epoch, int64_t step) {
  return "epoch=" + std::to_string(epoch) + "-step=" + std::to_string(step) + ".h5";
}

std::vector<std::string> ModelCheckpoint::record(const std::string& file, std::optional<double> score) {
  // A file written again (same name) replaces its old entries, score included.
  recent_.erase(std::remove(recent_.begin(), recent_.end(), file), recent_.end());
  scored_.erase(std::remove_if(scored_.begin(), scored_.end(), [&](auto& p) { return p.second == file; }), scored_.end());
  recent_.push_back(file);
  if (score && !std::isnan(*score) && !o_.monitor.empty()) {  // a NaN score ranks nowhere
    scored_.emplace_back(*score, file);
    std::stable_sort(scored_.begin(), scored_.end(), [this](auto& a, auto& b) { return better(a.first, b.first); });
  }
  std::set<std::string> keep = {file};
  const size_t k_last = o_.keep_last_k < 0 ? recent_.size() : size_t(o_.keep_last_k);
  for (size_t i = recent_.size() > k_last ? recent_.size() - k_last : 0; i < recent_.size(); ++i) keep.insert(recent_[i]);
  const size_t k_top = o_.save_top_k < 0 ? scored_.size() : std::min(scored_.size(), size_t(o_.save_top_k));
  for (size_t i = 0; i < k_top; ++i) keep.insert(scored_[i].second);
  std::vector<std::string> dropped;
  std::set<std::string> all(recent_.begin(), recent_.end());
  for (auto& [s, f] : scored_) all.insert(f);
  for (const auto& f : all)
    if (!keep.count(f)) dropped.push_back(f);
  auto gone = [&](const std::string& f) { return std::find(dropped.begin(), dropped.end(), f) != dropped.end(); };
  recent_.erase(std::remove_if(recent_.begin(), recent_.end(), gone), recent_.end());
  scored_.erase(std::remove_if(scored_.begin(), scored_.end(), [&](auto& p) { return gone(p.second); }), scored_.end());
  return dropped;
}

void ModelCheckpoint::publish(const std::string& file, const std::vector<std::string>& dropped) const {
  try {
    hdf5_io::write_latest(dir_, file);
  } catch (const hdf5_io::CheckpointError& e) {
    throw CheckpointError(e.what());
  }
  if (o_.save_last) {  // a hard link: no copy, and it survives the retention of its target
    const fs::path tmp = fs::path(dir_) / "last.h5.tmp", last = fs::path(dir_) / "last.h5";
    std::error_code ec;
    fs::remove(tmp, ec);
    if (::link((fs::path(dir_) / file).c_str(), tmp.c_str()) == 0) fs::rename(tmp, last, ec);
    fs::remove(tmp, ec);  // rename onto a link to the same inode does nothing and leaves tmp
  }
  for (const auto& f : dropped) {
    std::error_code ec;
    fs::remove(fs::path(dir_) / f, ec);
  }
}

std::string ModelCheckpoint::best_path() const {
  return scored_.empty() ? std::string() : (fs::path(dir_) / scored_.front().second).string();
}

std::optional<double> ModelCheckpoint::best_score() const {
  if (scored_.empty()) return std::nullopt;
  return scored_.front().first;
}

nlohmann::json ModelCheckpoint::state() const {
  nlohmann::json scored = nlohmann::json::array();
  for (auto& [s, f] : scored_) scored.push_back({{"score", detail::json_number(s)}, {"file", f}});
  return {{"recent", recent_}, {"scored", scored}};
}

void ModelCheckpoint::load_state(const nlohmann::json& j) {
  recent_ = j.value("recent", std::vector<std::string>{});
  scored_.clear();
  for (const auto& e : j.value("scored", nlohmann::json::array()))
    scored_.emplace_back(detail::number_from_json(e.at("score")), e.at("file"));
}

}  // namespace mpitrain
