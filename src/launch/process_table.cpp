// The /proc process table: live processes, session members, children, signal names.
#include "process_table.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace mpitrain::detail {

namespace {
// /proc/<pid>/stat of a process that may exit at any moment: a failed open or read is "gone",
// never an exception (an ifstream read of a vanished process throws std::ios_failure).
bool read_stat(const char* pid, std::string& out) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%s/stat", pid);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[1024];
  ssize_t n;
  out.clear();
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, size_t(n));
  ::close(fd);
  return n == 0 && !out.empty();
}
}  // namespace

std::vector<ProcStat> processes() {
  std::vector<ProcStat> out;
  DIR* dir = ::opendir("/proc");  // readdir tolerates entries vanishing while it runs
  if (!dir) return out;
  std::string s;
  while (const dirent* d = ::readdir(dir)) {
    if (!std::isdigit(static_cast<unsigned char>(d->d_name[0])) || !read_stat(d->d_name, s)) continue;
    auto close = s.rfind(')');  // the command name may contain spaces and parentheses
    if (close == std::string::npos || close + 2 > s.size()) continue;
    char state = 0;
    long ppid = 0, pgrp = 0, session = 0;
    if (std::sscanf(s.c_str() + close + 2, "%c %ld %ld %ld", &state, &ppid, &pgrp, &session) == 4 && state != 'Z')
      out.push_back({pid_t(std::atol(d->d_name)), pid_t(ppid), pid_t(session), state});
  }
  ::closedir(dir);
  return out;
}

std::vector<pid_t> session_members(pid_t sid) {
  std::vector<pid_t> out;
  for (const auto& p : processes())
    if (p.session == sid) out.push_back(p.pid);
  return out;
}

pid_t child_of(pid_t parent) {
  for (const auto& p : processes())
    if (p.ppid == parent) return p.pid;
  return -1;
}

std::string signal_text(int sig) {
  const char* d = ::strsignal(sig);
  return "signal " + std::to_string(sig) + " (" + (d ? d : "?") + ")";
}

}  // namespace mpitrain::detail
