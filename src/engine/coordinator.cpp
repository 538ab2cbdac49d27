#include "coordinator.hpp"

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <limits>

#include "engine_impl.hpp"
#include "mpitrain/comm/agreement.hpp"

namespace mpitrain::detail {

namespace {
// Rank 0 writes the timeline, or every rank when the path names its rank.
std::unique_ptr<Timeline> open_timeline(const std::string& path, int rank) {
  if (path.empty()) return nullptr;
  const std::string key = "{rank}";
  const auto at = path.find(key);
  if (at == std::string::npos) return rank == 0 ? std::make_unique<Timeline>(path) : nullptr;
  std::string p = path;
  p.replace(at, key.size(), std::to_string(rank));
  return std::make_unique<Timeline>(p);
}

std::string joined_names(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < 8; ++i) s += (i ? ", '" : "'") + names[i] + "'";
  if (names.size() > 8) s += " and " + std::to_string(names.size() - 8) + " more";
  return s;
}

std::string seconds(std::chrono::milliseconds t) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", double(t.count()) / 1000.0);
  return buf;
}

std::exception_ptr argument_error(const std::string& what) { return std::make_exception_ptr(ArgumentError(what)); }
}  // namespace

Coordinator::Coordinator(Communicator& comm, const EngineOptions& options, EngineCounters& counters,
                         std::function<void(const std::vector<std::string>&)> released)
    : comm_(comm),
      options_(options),
      counters_(counters),
      released_(std::move(released)),
      timeline_(open_timeline(options.timeline, comm.rank())),
      cache_(options.cache_capacity),
      ops_(comm, options.fusion_threshold, timeline_.get()),
      joined_(size_t(comm.size()), false) {
  if (comm.rank() == 0) table_ = std::make_unique<MessageTable>(comm.size());
  last_stall_report_ = Clock::now();
}

Coordinator::~Coordinator() = default;

std::vector<std::string> Coordinator::pending_names() const { return order_; }

void Coordinator::finish(Entry& e, std::exception_ptr error) {
  if (e.req.type != OpType::Join) released_({e.req.name});
  e.state->finish_one(std::move(error));
}

void Coordinator::finish_all(std::vector<std::pair<Entry*, std::exception_ptr>>& done) {
  if (done.empty()) return;
  std::vector<std::string> names;
  for (auto& [e, error] : done) names.push_back(e->req.name);
  released_(names);
  std::vector<Engine::Handle::State*> wake;
  for (auto& [e, error] : done)
    if (e->state->mark_one(error)) wake.push_back(e->state.get());
  for (auto* s : wake) s->notify();
}

void Coordinator::add(Entry e) {
  const std::string& name = e.req.name;
  if (e.req.type == OpType::Join) {
    if (join_) return finish(e, argument_error("engine: join() is already in flight on this rank"));
    if (!pending_.empty())
      return finish(e, argument_error("engine: join() with named operations in flight on this rank (" +
                                                joined_names(order_) + "): wait for their handles first"));
    join_ = e.state;
    join_sent_ = false;
    return;
  }
  if (join_)
    return finish(e, argument_error("engine: '" + name + "' submitted after join() on this rank"));
  if (pending_.count(name))  // the engine refuses these at submission already
    return e.state->finish_one(argument_error("engine: tensor '" + name + "' is already in flight on this rank"));
  if (e.req.type != OpType::Allgather && e.req.group.empty()) {
    const int s = cache_.lookup(e.req);
    if (s >= 0) e.slot = s;
    else if (s == ResponseCache::kDiffers) invalid_.push_back(cache_.slot_of(name));  // every rank renegotiates it
  }
  order_.push_back(name);
  pending_.emplace(name, std::move(e));
}

std::vector<int32_t> Coordinator::agreement_vector(int64_t fifo_here, bool stop_here, Clock::time_point now) {
  std::vector<int32_t> v(3 + cache_.slots(), 1);
  v[0] = int32_t(std::min<int64_t>(fifo_here, std::numeric_limits<int32_t>::max()));
  bool round_trip = join_ && !join_sent_;
  const bool joined_here = joined_[size_t(comm_.rank())];
  for (size_t s = 0; s < cache_.slots(); ++s)
    if (cache_.occupied(int(s)) && joined_here) v[3 + s] = 2;  // a joined rank is ready for anything
  for (const auto& name : order_) {
    Entry& e = pending_.at(name);
    if (e.slot >= 0) {
      // Waiting long on a cached name: renegotiate it, so that rank 0 sees who is missing.
      if (options_.stall_check.count() > 0 && now - e.submitted > options_.stall_check / 2) invalid_.push_back(e.slot);
      else v[3 + size_t(e.slot)] = 2;
    } else if (!e.sent) {
      round_trip = true;
    }
  }
  for (int s : invalid_) v[3 + size_t(s)] = 0;
  if (table_ && options_.stall_shutdown.count() > 0 && shutdown_report_.empty()) {
    if (!table_->stall_report(now, options_.stall_shutdown).empty()) {
      // Everything stalled goes in the report, not only what crossed the shutdown time first.
      const auto age = options_.stall_check.count() > 0 ? options_.stall_check : options_.stall_shutdown;
      shutdown_report_ = "engine: stalled past the stall shutdown time (" + seconds(options_.stall_shutdown) +
                         "): " + table_->stall_report(now, age);
    }
  }
  if (!shutdown_report_.empty()) round_trip = true;
  v[1] = round_trip ? 0 : 1;
  v[2] = stop_here ? 0 : 1;
  return v;
}

ResponseList Coordinator::negotiate(Clock::time_point now) {
  ++counters_.negotiations;
  std::vector<Request> mine;
  for (const auto& name : order_) {
    Entry& e = pending_.at(name);
    if (e.slot < 0 && !e.sent) {
      mine.push_back(e.req);
      e.sent = true;
    }
  }
  if (join_ && !join_sent_) {
    Request j;
    j.type = OpType::Join;
    j.name = "join";
    mine.push_back(j);
    join_sent_ = true;
  }
  const std::vector<std::string> all = allgather_bytes(comm_, serialize(mine));
  std::string answer;
  if (table_) {
    for (int r = 0; r < comm_.size(); ++r)
      for (const auto& req : parse_requests(all[size_t(r)])) table_->add(r, req, now);
    ResponseList rl = table_->take_ready();
    rl.shutdown = shutdown_report_;
    answer = serialize(rl);
  }
  broadcast_bytes(comm_, answer, 0);
  return parse_response_list(answer);
}

void Coordinator::forget_slot(int slot) {
  cache_.erase(slot);
  for (auto& [name, e] : pending_)
    if (e.slot == slot) {
      e.slot = ResponseCache::kMissing;
      e.sent = false;
    }
}

Coordinator::Outcome Coordinator::cycle(int64_t fifo_here, bool stop_here) {
  const Clock::time_point now = Clock::now();
  std::vector<int32_t> v = agreement_vector(fifo_here, stop_here, now);
  invalid_.clear();
  comm_.allreduce(v.data(), v.data(), int64_t(v.size()), DType::Int32, ReduceOp::Min);
  ++counters_.cycles;
  if (v[2] == 0) {
    if (!idle())
      fail_all(std::make_exception_ptr(CommError("engine: stopped by another rank while " +
                                                 (pending_.empty() ? std::string("join()") : joined_names(order_)) +
                                                 " was in flight on this rank")));
    return {0, true};
  }
  // Cached names ready everywhere, in slot order (the same on every rank); then invalidations.
  std::vector<Response> responses;
  bool invalidated = false;
  for (size_t s = 0; s < cache_.slots(); ++s) {
    if (!cache_.occupied(int(s))) continue;
    if (v[3 + s] == 2) {
      Response r;
      r.req = cache_.at(int(s));
      responses.push_back(std::move(r));
      cache_.touch(int(s));
    }
  }
  const size_t cached = responses.size();
  for (size_t s = 0; s < cache_.slots(); ++s)
    if (cache_.occupied(int(s)) && v[3 + s] == 0) {
      forget_slot(int(s));
      invalidated = true;
    }
  ResponseList rl;
  if (v[1] == 0 || invalidated) {
    rl = negotiate(now);
    if (!rl.shutdown.empty()) {
      fail_all(std::make_exception_ptr(CommError(rl.shutdown)));
      return {0, true};
    }
    std::fill(joined_.begin(), joined_.end(), false);
    for (int32_t r : rl.joined) joined_[size_t(r)] = true;
    for (auto& r : rl.responses) responses.push_back(std::move(r));
  }
  counters_.cache_hits += int64_t(cached);
  responses_run_empty_ = responses.empty() && rl.join_completed_by < 0;
  run(std::move(responses), cached, Clock::now());
  if (rl.join_completed_by >= 0 && join_) {
    {
      std::lock_guard<std::mutex> lock(join_->m);
      join_->value = rl.join_completed_by;
    }
    join_->finish_one();
    join_.reset();
    join_sent_ = false;
  }
  if (table_) log_stalls(now);
  return {v[0], false, !responses_run_empty_};
}

void Coordinator::run(std::vector<Response> responses, size_t cached, Clock::time_point agreed) {
  std::vector<Job> jobs;
  std::vector<Entry*> entries;  // per job: this rank's submission, or null (joined: zeros)
  std::vector<bool> from_cache;
  std::vector<std::pair<Entry*, std::exception_ptr>> failed;
  for (size_t i = 0; i < responses.size(); ++i) {
    Response& resp = responses[i];
    auto it = pending_.find(resp.req.name);
    Entry* e = it == pending_.end() ? nullptr : &it->second;
    if (resp.error) {
      if (e) failed.emplace_back(e, argument_error(resp.message));
      continue;
    }
    if (i >= cached) ++counters_.cache_misses;
    if (e && timeline_) {
      std::string args = "{\"cached\": " + std::string(i < cached ? "true" : "false");
      if (!resp.arrival.empty()) {
        args += ", \"arrival_order\": [";
        for (size_t k = 0; k < resp.arrival.size(); ++k) args += (k ? ", " : "") + std::to_string(resp.arrival[k]);
        args += "]";
      }
      timeline_->phase(resp.req.name, "NEGOTIATE", e->submitted, agreed, args + "}");
    }
    Job j;
    j.resp = std::move(resp);
    j.agreed = agreed;
    if (e) j.tensor = e->tensor;
    jobs.push_back(std::move(j));
    entries.push_back(e);
    from_cache.push_back(i < cached);
  }
  finish_all(failed);
  for (auto& [e, error] : failed) pending_.erase(std::string(e->req.name));  // a copy: the key dies with the node
  const int contributors = comm_.size() - int(std::count(joined_.begin(), joined_.end(), true));
  const CollectiveOps::Counts n = ops_.run(jobs, contributors);
  counters_.collectives += n.collectives;
  counters_.fused_bytes += n.fused_bytes;
  if (timeline_ && n.fused_bytes > 0) timeline_->counter("fused_bytes", agreed, n.fused_bytes);
  std::vector<std::pair<Entry*, std::exception_ptr>> done;
  for (size_t k = 0; k < jobs.size(); ++k) {
    const Request& req = jobs[k].resp.req;
    // Remembered on every rank in the same order, so the caches stay identical.
    if (!from_cache[k] && req.type != OpType::Allgather && req.group.empty()) {
      const int evicted = cache_.put(req);
      if (evicted >= 0)
        for (auto& [name, p] : pending_)
          if (p.slot == evicted) {
            p.slot = ResponseCache::kMissing;
            p.sent = false;
          }
    }
    Entry* e = entries[k];
    if (!e) continue;
    ++counters_.tensors;
    if (req.group.empty()) {
      std::lock_guard<std::mutex> lock(e->state->m);
      e->state->output = req.type == OpType::Allgather ? jobs[k].output : e->tensor;
    }
    done.emplace_back(e, nullptr);
  }
  finish_all(done);
  for (auto& [e, error] : done) pending_.erase(std::string(e->req.name));
  order_.erase(std::remove_if(order_.begin(), order_.end(), [&](const std::string& n) { return !pending_.count(n); }),
               order_.end());
}

void Coordinator::fail_all(const std::exception_ptr& error) {
  for (auto& [name, e] : pending_) finish(e, error);
  pending_.clear();
  order_.clear();
  if (join_) join_->finish_one(error);
  join_.reset();
}

void Coordinator::log_stalls(Clock::time_point now) {
  if (options_.stall_check.count() <= 0 || now - last_stall_report_ < options_.stall_check) return;
  const std::string report = table_->stall_report(now, options_.stall_check);
  if (report.empty()) return;
  last_stall_report_ = now;
  std::cerr << "mpitrain engine: stalled tensors (some ranks have not submitted them): " << report << std::endl;
}

}  // namespace mpitrain::detail
