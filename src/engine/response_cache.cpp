#include "response_cache.hpp"

namespace mpitrain::detail {

int ResponseCache::lookup(const Request& r) const {
  auto it = by_name_.find(r.name);
  if (it == by_name_.end()) return kMissing;
  const Request& c = at(it->second);
  return c.matches(r) && c.shape == r.shape ? it->second : kDiffers;
}

int ResponseCache::slot_of(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? kMissing : it->second;
}

int ResponseCache::put(const Request& r) {
  if (capacity_ == 0) return kMissing;
  auto it = by_name_.find(r.name);
  if (it != by_name_.end()) {
    entries_[size_t(it->second)] = r;
    touch(it->second);
    return kMissing;
  }
  int evicted = kMissing;
  if (by_name_.size() >= capacity_) {
    evicted = lru_.back();
    erase(evicted);
  }
  int slot;
  if (!free_.empty()) {
    slot = free_.back();  // the lowest free slot is as good as any: every rank picks the same
    free_.pop_back();
  } else {
    slot = int(entries_.size());
    entries_.emplace_back();
    lru_pos_.emplace_back();
  }
  entries_[size_t(slot)] = r;
  by_name_[r.name] = slot;
  lru_.push_front(slot);
  lru_pos_[size_t(slot)] = lru_.begin();
  return evicted;
}

void ResponseCache::touch(int slot) {
  lru_.splice(lru_.begin(), lru_, lru_pos_[size_t(slot)]);
}

void ResponseCache::erase(int slot) {
  auto& e = entries_[size_t(slot)];
  if (!e) return;
  by_name_.erase(e->name);
  e.reset();
  lru_.erase(lru_pos_[size_t(slot)]);
  free_.push_back(slot);
}

}  // namespace mpitrain::detail
