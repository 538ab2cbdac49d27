#include "channel.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>

#include "mpitrain/errors.hpp"

namespace mpitrain::detail {

namespace {
sockaddr_un abstract_address(const std::string& name, socklen_t* len) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (name.size() + 1 > sizeof(a.sun_path)) throw Error("channel name too long: " + name);
  a.sun_path[0] = '\0';  // abstract namespace: vanishes with the socket
  std::memcpy(a.sun_path + 1, name.data(), name.size());
  *len = socklen_t(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  return a;
}
std::string sys_error(const char* what) { return std::string(what) + ": " + std::strerror(errno); }
}  // namespace

LineChannel::~LineChannel() { close(); }
LineChannel::LineChannel(LineChannel&& o) noexcept
    : fd_(o.fd_), buffer_(std::move(o.buffer_)), pending_(std::move(o.pending_)) {
  o.fd_ = -1;
}
LineChannel& LineChannel::operator=(LineChannel&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = o.fd_;
    buffer_ = std::move(o.buffer_);
    pending_ = std::move(o.pending_);
    o.fd_ = -1;
  }
  return *this;
}

void LineChannel::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

LineChannel LineChannel::connect(const std::string& name) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw Error(sys_error("socket"));
  socklen_t len = 0;
  sockaddr_un a = abstract_address(name, &len);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), len) != 0) {
    std::string e = sys_error(("connect to driver channel " + name).c_str());
    ::close(fd);
    throw Error(e);
  }
  return LineChannel(fd);
}

bool LineChannel::send(const nlohmann::json& msg) {
  std::string line = msg.dump() + "\n";
  std::lock_guard<std::mutex> lock(send_mutex_);
  size_t off = 0;
  while (off < line.size() && fd_ >= 0) {
    ssize_t n = ::send(fd_, line.data() + off, line.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += size_t(n);
  }
  return off == line.size();
}

std::vector<nlohmann::json> LineChannel::receive(bool* eof) {
  std::vector<nlohmann::json> out;
  out.swap(pending_);
  *eof = false;
  char buf[65536];
  for (;;) {
    ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      buffer_.append(buf, size_t(n));
      continue;
    }
    if (n == 0) *eof = true;
    else if (errno == EINTR) continue;
    else if (errno != EAGAIN && errno != EWOULDBLOCK) *eof = true;
    break;
  }
  size_t start = 0, nl;
  while ((nl = buffer_.find('\n', start)) != std::string::npos) {
    auto j = nlohmann::json::parse(buffer_.begin() + long(start), buffer_.begin() + long(nl), nullptr, false);
    if (!j.is_discarded()) out.push_back(std::move(j));
    start = nl + 1;
  }
  buffer_.erase(0, start);
  return out;
}

std::optional<nlohmann::json> LineChannel::receive_one(int timeout_ms) {
  pollfd p{fd_, POLLIN, 0};
  for (;;) {
    bool eof = false;
    auto msgs = receive(&eof);
    if (!msgs.empty()) {  // the task; a stop may have come right behind it
      pending_.assign(std::make_move_iterator(msgs.begin() + 1), std::make_move_iterator(msgs.end()));
      return std::move(msgs.front());
    }
    if (eof) return std::nullopt;
    int r = ::poll(&p, 1, timeout_ms);
    if (r == 0) return std::nullopt;
    if (r < 0 && errno != EINTR) return std::nullopt;
  }
}

Listener::Listener() {
  static std::atomic<unsigned> counter{0};
  std::random_device rd;
  name_ = "mpitrain-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" + std::to_string(rd());
  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd_ < 0) throw Error(sys_error("socket"));
  socklen_t len = 0;
  sockaddr_un a = abstract_address(name_, &len);
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), len) != 0 || ::listen(fd_, 256) != 0) {
    std::string e = sys_error("bind/listen driver channel");
    ::close(fd_);
    throw Error(e);
  }
}

Listener::~Listener() {
  if (fd_ >= 0) ::close(fd_);
}

LineChannel Listener::accept() {
  int fd = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
  return LineChannel(fd);
}

}  // namespace mpitrain::detail
