#include "message_table.hpp"

#include <algorithm>
#include <set>
#include <sstream>

namespace mpitrain::detail {

void MessageTable::add(int rank, const Request& r, Clock::time_point now) {
  if (r.type == OpType::Join) {
    joined_[size_t(rank)] = true;
    last_joined_ = rank;
    return;
  }
  auto it = table_.find(r.name);
  if (it == table_.end()) {
    names_.push_back(r.name);
    Entry e;
    e.by_rank.resize(size_t(world_));
    e.first_seen = now;
    e.pos = std::prev(names_.end());
    it = table_.emplace(r.name, std::move(e)).first;
  }
  it->second.by_rank[size_t(rank)] = r;
  it->second.arrival.push_back(rank);
}

bool MessageTable::complete(const Entry& e) const {
  bool any = false;
  for (int r = 0; r < world_; ++r) {
    if (e.by_rank[size_t(r)]) any = true;
    else if (!joined_[size_t(r)]) return false;
  }
  return any;
}

Response MessageTable::answer(const std::string& name, const Entry& e) const {
  Response out;
  out.arrival = e.arrival;
  const Request* first = nullptr;
  bool agree = true;
  for (const auto& r : e.by_rank)
    if (r) {
      if (!first) first = &*r;
      else if (!first->matches(*r)) agree = false;
    }
  out.req = *first;
  int joined = int(std::count(joined_.begin(), joined_.end(), true));
  std::string why;
  if (!agree) {
    std::ostringstream s;
    s << "ranks disagree on tensor '" << name << "':";
    for (int r = 0; r < world_; ++r)
      if (e.by_rank[size_t(r)]) s << " rank " << r << " " << e.by_rank[size_t(r)]->signature() << ";";
    why = s.str();
    why.pop_back();
  } else if (joined > 0 && first->type == OpType::Allreduce && first->op != ReduceOp::Sum && first->op != ReduceOp::Avg) {
    why = "tensor '" + name + "': " + reduce_op_name(first->op) + " is undefined while ranks have joined (they contribute zeros)";
  } else if (first->type == OpType::Broadcast && (first->root < 0 || first->root >= world_)) {
    why = "tensor '" + name + "': broadcast root " + std::to_string(first->root) + " is not a rank of " + std::to_string(world_);
  } else if (first->type == OpType::Broadcast && joined_[size_t(first->root)]) {
    why = "tensor '" + name + "': broadcast root " + std::to_string(first->root) + " has joined";
  }
  if (!why.empty()) {
    out.error = true;
    out.message = "engine: " + why;
    return out;
  }
  if (first->type == OpType::Allgather)
    for (const auto& r : e.by_rank) out.first_dims.push_back(r ? r->shape[0] : 0);
  return out;
}

ResponseList MessageTable::take_ready() {
  ResponseList out;
  // A group goes out only whole, its members together.
  std::unordered_map<std::string, int> complete_in_group;
  for (const auto& name : names_) {
    const Entry& e = table_.at(name);
    const auto& any = *std::find_if(e.by_rank.begin(), e.by_rank.end(), [](const auto& r) { return r.has_value(); });
    if (!any->group.empty() && complete(e)) ++complete_in_group[any->group];
  }
  for (auto it = names_.begin(); it != names_.end();) {
    Entry& e = table_.at(*it);
    const auto& any = *std::find_if(e.by_rank.begin(), e.by_rank.end(), [](const auto& r) { return r.has_value(); });
    const bool whole_group = any->group.empty() || complete_in_group[any->group] >= any->group_size;
    if (!complete(e) || !whole_group) {
      ++it;
      continue;
    }
    out.responses.push_back(answer(*it, e));
    table_.erase(*it);
    it = names_.erase(it);
  }
  for (int r = 0; r < world_; ++r)
    if (joined_[size_t(r)]) out.joined.push_back(r);
  if (int(out.joined.size()) == world_) {
    out.join_completed_by = last_joined_;
    out.joined.clear();
    std::fill(joined_.begin(), joined_.end(), false);
  }
  return out;
}

std::string MessageTable::ranks_of(const Entry& e, bool submitted) const {
  std::string s;
  for (int r = 0; r < world_; ++r) {
    const bool has = e.by_rank[size_t(r)].has_value();
    if (has == submitted && (submitted || !joined_[size_t(r)])) s += (s.empty() ? "" : ", ") + std::to_string(r);
  }
  return s.empty() ? "none" : s;
}

std::string MessageTable::stall_report(Clock::time_point now, std::chrono::milliseconds age) const {
  std::ostringstream s;
  for (const auto& name : names_) {
    const Entry& e = table_.at(name);
    if (now - e.first_seen < age) continue;
    const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(now - e.first_seen).count();
    s << (s.tellp() > 0 ? "; " : "") << "tensor '" << name << "' waiting " << waited / 1000 << "." << waited % 1000 / 100
      << " s: submitted by ranks " << ranks_of(e, true) << ", missing ranks " << ranks_of(e, false);
  }
  return s.str();
}

}  // namespace mpitrain::detail
