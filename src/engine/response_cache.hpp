// Agreed operations, remembered so that a cycle can agree on them with one bit per slot instead of
// a rank-0 round trip (Horovod's response cache). Every rank applies the same sequence of puts,
// touches and erases, so slots and LRU order are identical everywhere without communication.
#pragma once
#include <list>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "message.hpp"

namespace mpitrain::detail {

class ResponseCache {
 public:
  explicit ResponseCache(size_t capacity) : capacity_(capacity) {}

  static constexpr int kMissing = -1;   ///< name not cached
  static constexpr int kDiffers = -2;   ///< name cached with another signature
  /// The slot holding exactly `r`, kMissing or kDiffers.
  int lookup(const Request& r) const;
  /// Remembers `r` (replacing its name's entry) as most recently used; evicts the least recently
  /// used entry when full. Returns the evicted slot or kMissing.
  int put(const Request& r);
  /// The slot of `name`, or kMissing.
  int slot_of(const std::string& name) const;
  void touch(int slot);
  void erase(int slot);

  /// Slot indices are below this (the agreement vector's length).
  size_t slots() const { return entries_.size(); }
  bool occupied(int slot) const { return entries_[size_t(slot)].has_value(); }
  const Request& at(int slot) const { return *entries_[size_t(slot)]; }
  size_t capacity() const { return capacity_; }

 private:
  size_t capacity_;
  std::vector<std::optional<Request>> entries_;
  std::vector<std::list<int>::iterator> lru_pos_;
  std::list<int> lru_;  // front: most recently used
  std::vector<int> free_;
  std::unordered_map<std::string, int> by_name_;
};

}  // namespace mpitrain::detail
