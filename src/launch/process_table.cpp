// The /proc process table: live processes, session members, children, signal names.
#include "process_table.hpp"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace mpitrain::detail {

std::vector<ProcStat> processes() {
  std::vector<ProcStat> out;
  for (auto& d : std::filesystem::directory_iterator("/proc")) {
    const std::string name = d.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream f(d.path() / "stat");
    std::string s((std::istreambuf_iterator<char>(f)), {});
    auto close = s.rfind(')');  // the command name may contain spaces and parentheses
    if (close == std::string::npos) continue;
    std::istringstream rest(s.substr(close + 2));
    char state;
    long ppid, pgrp, session;
    if (rest >> state >> ppid >> pgrp >> session && state != 'Z')
      out.push_back({pid_t(std::stol(name)), pid_t(ppid), pid_t(session)});
  }
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
