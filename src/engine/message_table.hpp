// Rank 0's view of the negotiation (Horovod's message table): every request not yet answered, by
// name and rank, and which ranks have joined. It decides what is ready everywhere, what disagrees,
// and what is stalled; it does no communication.
#pragma once
#include <chrono>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "message.hpp"

namespace mpitrain::detail {

using Clock = std::chrono::steady_clock;

class MessageTable {
 public:
  explicit MessageTable(int world) : world_(world), joined_(size_t(world), false) {}

  /// Rank `rank` asks for `r` (a Join request marks the rank joined).
  void add(int rank, const Request& r, Clock::time_point now);
  /// The answers of this round, in the order names were first seen: every name that all ranks
  /// that have not joined requested (a group only once all its members are), as a run or, if the
  /// ranks disagree, an error naming each rank's request; and the join state.
  ResponseList take_ready();

  /// A report of every name waiting longer than `age` ("" if none): for each, the ranks that
  /// submitted it and the ranks that did not.
  std::string stall_report(Clock::time_point now, std::chrono::milliseconds age) const;
  bool empty() const { return names_.empty(); }

 private:
  struct Entry {
    std::vector<std::optional<Request>> by_rank;
    std::vector<int32_t> arrival;
    Clock::time_point first_seen;
    std::list<std::string>::iterator pos;
  };
  bool complete(const Entry& e) const;
  Response answer(const std::string& name, const Entry& e) const;
  std::string ranks_of(const Entry& e, bool submitted) const;

  int world_;
  std::vector<bool> joined_;
  int32_t last_joined_ = -1;
  std::unordered_map<std::string, Entry> table_;
  std::list<std::string> names_;  // first-seen order
};

}  // namespace mpitrain::detail
