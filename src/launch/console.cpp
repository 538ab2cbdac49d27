// The driver's terminal output: progress redrawn in place, log lines prefixed with the rank.
#include "console.hpp"

#include <unistd.h>

#include <iostream>

#include "mpitrain/launch/task_context.hpp"

namespace mpitrain::detail {

void default_message_handler(const nlohmann::json& m) {
  static const bool tty = ::isatty(2);
  static bool mid_line = false;
  const auto type = parse_message_type(m.value("type", ""));
  if (type == MessageType::Progress && m.contains("progress") && m["progress"].is_object() &&
      m["progress"].contains("line")) {
    const std::string line = m["progress"].value("line", "");
    if (tty) {
      std::cerr << "\r\033[K" << line << std::flush;
      mid_line = true;
    } else {
      std::cerr << line << std::endl;
    }
  } else if (type == MessageType::Log) {
    if (mid_line) std::cerr << "\n";
    mid_line = false;
    std::cerr << "[rank " << m.value("rank", -1) << "] " << m.value("line", "") << std::endl;
  }
}

}  // namespace mpitrain::detail
