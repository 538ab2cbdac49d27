// Control channel between the driver and its workers: a Unix stream socket in the abstract
// namespace (no file to clean up), carrying one JSON object per line.
#pragma once
#include <nlohmann/json.hpp>

#include <mutex>
#include <optional>
#include <string>

namespace mpitrain::detail {

/// A connected socket speaking newline-delimited JSON. Sends are thread-safe.
class LineChannel {
 public:
  LineChannel() = default;
  explicit LineChannel(int fd) : fd_(fd) {}
  ~LineChannel();
  LineChannel(LineChannel&& o) noexcept;
  LineChannel& operator=(LineChannel&& o) noexcept;
  LineChannel(const LineChannel&) = delete;
  LineChannel& operator=(const LineChannel&) = delete;

  /// Connects to the listening socket `name`; throws Error when nobody listens.
  static LineChannel connect(const std::string& name);

  int fd() const { return fd_; }
  bool open() const { return fd_ >= 0; }
  /// Sends one message; false when the peer is gone.
  bool send(const nlohmann::json& msg);
  /// Reads what is available without blocking (call when poll() says readable) and returns the
  /// complete lines received. `eof` becomes true when the peer closed.
  std::vector<nlohmann::json> receive(bool* eof);
  /// Blocks up to `timeout_ms` for one message (worker side, for the task). Messages that came
  /// with it (a stop sent right after the task) are kept for the next receive().
  std::optional<nlohmann::json> receive_one(int timeout_ms);
  /// Messages already read off the socket and not yet returned (poll() will not report them).
  bool has_pending() const { return !pending_.empty(); }
  void close();

 private:
  int fd_ = -1;
  std::string buffer_;
  std::vector<nlohmann::json> pending_;
  std::mutex send_mutex_;
};

/// A listening socket with a unique abstract name.
class Listener {
 public:
  Listener();  // throws Error on failure
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  const std::string& name() const { return name_; }
  int fd() const { return fd_; }
  /// Accepts one pending connection (non-blocking); invalid channel when none is pending.
  LineChannel accept();

 private:
  int fd_ = -1;
  std::string name_;
};

}  // namespace mpitrain::detail
