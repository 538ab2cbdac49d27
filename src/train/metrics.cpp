#include "mpitrain/train/metrics.hpp"

#include <algorithm>

#include "mpitrain/detail/json_number.hpp"

namespace mpitrain {

void MetricSink::add(const std::string& name, double value, double weight, const LogOptions& o) {
  if (o.on_step) step_[name] = value;
  if (o.on_epoch) {
    Acc& a = epoch_[name];
    a.sum += value * weight;
    a.count += weight;
    a.sync = o.sync_dist;
  }
  modes_[name] = o.mode;
  if (o.prog_bar && std::find(prog_bar_.begin(), prog_bar_.end(), name) == prog_bar_.end()) prog_bar_.push_back(name);
}

MetricMode MetricSink::mode_of(const std::string& name) const {
  auto it = modes_.find(name);
  return it == modes_.end() ? MetricMode::Min : it->second;
}

std::map<std::string, double> MetricSink::take_step_values() {
  std::map<std::string, double> out;
  out.swap(step_);
  return out;
}

std::map<std::string, MetricSink::Acc> MetricSink::totals(Engine& engine) const {
  // Names in map order (sorted): the same layout on every rank, or the allreduce reports a mismatch.
  std::vector<double> packed;
  for (auto& [name, a] : epoch_)
    if (a.sync) {
      packed.push_back(a.sum);
      packed.push_back(a.count);
    }
  if (!packed.empty()) engine.allreduce(packed.data(), int64_t(packed.size()), DType::Float64, ReduceOp::Sum).wait();
  std::map<std::string, Acc> out = epoch_;
  size_t k = 0;
  for (auto& [name, a] : out)
    if (a.sync) {
      a.sum = packed[k++];
      a.count = packed[k++];
    }
  return out;
}

nlohmann::json MetricSink::state(Engine& engine) const {
  nlohmann::json out = nlohmann::json::object();
  for (auto& [name, a] : totals(engine))
    out[name] = {{"sum", detail::json_number(a.sum)}, {"count", a.count}, {"sync", a.sync}};
  return out;
}

void MetricSink::load_state(const nlohmann::json& j, bool with_values) {
  for (auto& [name, v] : j.items())
    epoch_[name] = with_values ? Acc{detail::number_from_json(v.at("sum")), v.at("count"), v.at("sync")}
                               : Acc{0, 0, v.at("sync").get<bool>()};
}

std::map<std::string, double> MetricSink::reduce_epoch(Engine& engine) {
  std::map<std::string, double> out;
  for (auto& [name, a] : totals(engine)) out[name] = a.count > 0 ? a.sum / a.count : 0.0;
  epoch_.clear();
  return out;
}

}  // namespace mpitrain
