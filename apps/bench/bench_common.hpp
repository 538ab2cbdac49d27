// Small helpers shared by the mpitrain-bench subcommands.
#pragma once
#include <algorithm>
#include <boost/program_options.hpp>
#include <iostream>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace mpitrain::bench {

/// Bad command line: the app prints the message and exits 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : (v[h - 1] + v[h]) / 2;  // an even count: the mean of the middle two
}

inline std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t p = 0;
  while (p <= s.size()) {
    size_t q = s.find(sep, p);
    if (q == std::string::npos) q = s.size();
    if (q > p) out.push_back(s.substr(p, q - p));
    p = q + 1;
  }
  return out;
}

/// "4", "64K", "16M", "1G" -> bytes.
inline size_t parse_bytes(const std::string& s) {
  size_t pos = 0;
  unsigned long long v = 0;
  try {
    v = std::stoull(s, &pos);
  } catch (const std::exception&) {
    throw UsageError("not a size: '" + s + "' (examples: 4, 64K, 16M, 1G)");
  }
  std::string suf = s.substr(pos);
  if (suf == "K" || suf == "k") v <<= 10;
  else if (suf == "M" || suf == "m") v <<= 20;
  else if (suf == "G" || suf == "g") v <<= 30;
  else if (!suf.empty()) throw UsageError("bad size suffix in '" + s + "' (use K, M or G)");
  return size_t(v);
}

inline std::string format(const char* fmt, ...) {
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

/// Parses a benchmark's options; on --help prints them and `columns` (if `print`, i.e. on
/// rank 0) and returns false.
inline bool parse_options(const boost::program_options::options_description& desc, const std::vector<std::string>& args,
                          const char* columns, bool print = true) {
  boost::program_options::variables_map vm;
  boost::program_options::store(boost::program_options::command_line_parser(args).options(desc).run(), vm);
  if (vm.count("help")) {
    if (print) std::cout << desc << "\n" << columns << "\n";
    return false;
  }
  boost::program_options::notify(vm);
  return true;
}

/// Runs a shell command and returns the number that follows `key` on one of its output lines;
/// throws Error with the whole output when the command fails or never prints it.
inline double run_and_read(const std::string& cmd, const std::string& key) {
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) throw std::runtime_error("cannot run " + cmd);
  char line[4096];
  double v = 0;
  bool found = false;
  std::string out;
  while (std::fgets(line, sizeof line, p)) {
    out += line;
    if (std::strncmp(line, (key + " ").c_str(), key.size() + 1) == 0) found = std::sscanf(line + key.size() + 1, "%lf", &v) == 1;
  }
  if (::pclose(p) != 0 || !found) throw std::runtime_error("baseline failed (" + cmd + "): " + out);
  return v;
}

/// Each parses its options first (so --help and option errors work anywhere), then checks the role.
int run_allreduce(const std::vector<std::string>& args, bool spmd);
int run_spawn(const std::vector<std::string>& args, bool spmd);
int run_train(const std::vector<std::string>& args, bool spmd, bool seed = false);
int run_ckpt(const std::vector<std::string>& args, bool spmd);
int run_memory(const std::vector<std::string>& args, bool spmd);
int run_engine(const std::vector<std::string>& args, bool spmd);
int run_adam(const std::vector<std::string>& args, bool spmd);

}  // namespace mpitrain::bench
