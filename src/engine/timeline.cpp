#include "timeline.hpp"

#include <cerrno>
#include <cstring>

#include "mpitrain/errors.hpp"

namespace mpitrain::detail {

namespace {
std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
      continue;
    }
    out += c;
  }
  return out + "\"";
}
}  // namespace

Timeline::Timeline(const std::string& path) : file_(std::fopen(path.c_str(), "w")) {
  if (!file_) throw ConfigError("timeline: cannot create '" + path + "': " + std::strerror(errno));
  std::fputs("{\"displayTimeUnit\": \"ms\", \"traceEvents\": [\n", file_);
  writer_ = std::thread([this] { write_loop(); });
}

Timeline::~Timeline() {
  {
    std::lock_guard<std::mutex> lock(m_);
    stop_ = true;
  }
  cv_.notify_one();
  writer_.join();
  std::fputs("\n]}\n", file_);
  std::fclose(file_);
}

int64_t Timeline::micros(Clock::time_point t) const {
  return std::chrono::duration_cast<std::chrono::microseconds>(t - epoch_).count();
}

void Timeline::phase(const std::string& tensor, const char* name, Clock::time_point begin, Clock::time_point end,
                     std::string args) {
  Event e{tensor, name, micros(begin), std::max<int64_t>(0, micros(end) - micros(begin)), std::move(args)};
  {
    std::lock_guard<std::mutex> lock(m_);
    queue_.push_back(std::move(e));
  }
  cv_.notify_one();
}

void Timeline::counter(const char* name, Clock::time_point at, int64_t value) {
  Event e{{}, name, micros(at), 0, "{\"bytes\": " + std::to_string(value) + "}"};
  {
    std::lock_guard<std::mutex> lock(m_);
    queue_.push_back(std::move(e));
  }
  cv_.notify_one();
}

void Timeline::write_loop() {
  std::unique_lock<std::mutex> lock(m_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    std::deque<Event> batch;
    batch.swap(queue_);
    const bool stop = stop_;
    lock.unlock();
    for (const auto& e : batch) write(e);
    std::fflush(file_);
    lock.lock();
    if (stop && queue_.empty()) return;
  }
}

void Timeline::write(const Event& e) {
  std::string line;
  if (e.tensor.empty()) {
    line = "{\"name\": " + json_string(e.name) + ", \"ph\": \"C\", \"pid\": 0, \"ts\": " + std::to_string(e.ts_us) +
           ", \"args\": " + e.args + "}";
  } else {
    auto it = tid_.find(e.tensor);
    if (it == tid_.end()) {
      it = tid_.emplace(e.tensor, int(tid_.size()) + 1).first;
      // Names the tensor's track.
      line = "{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": 0, \"tid\": " + std::to_string(it->second) +
             ", \"args\": {\"name\": " + json_string(e.tensor) + "}},\n";
    }
    line += "{\"name\": " + json_string(e.name) + ", \"cat\": \"engine\", \"ph\": \"X\", \"pid\": 0, \"tid\": " +
            std::to_string(it->second) + ", \"ts\": " + std::to_string(e.ts_us) + ", \"dur\": " +
            std::to_string(e.dur_us) + ", \"args\": " + (e.args.empty() ? "{}" : e.args) + "}";
  }
  std::fputs(first_ ? "" : ",\n", file_);
  std::fputs(line.c_str(), file_);
  first_ = false;
}

}  // namespace mpitrain::detail
