// Runs a sweep's trials as child processes, as many at once as the slots allow.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <thread>

#include "mpitrain/errors.hpp"
#include "mpitrain/tune/sweep.hpp"
#include "mpitrain/tune/tune_report.hpp"
#include "status_table.hpp"

namespace mpitrain::tune {

namespace {
using nlohmann::json;
namespace fs = std::filesystem;

json read_json(const std::string& file) {
  std::ifstream in(file);
  if (!in) return nullptr;
  try {
    return json::parse(in);
  } catch (const json::exception&) {
    return nullptr;
  }
}

void write_json(const std::string& file, const json& j) {  // atomically: readers see old or new
  const std::string tmp = file + ".tmp";
  std::ofstream(tmp) << j.dump() << "\n";
  fs::rename(tmp, file);
}

// The last "mpitrain-train: ..." (or a Tuner trial's "mpitrain-trial: ...") line of a trial's
// log: its one-line error.
std::string last_error(const std::string& log) {
  std::ifstream in(log);
  std::string line, last;
  while (std::getline(in, line))
    if (line.rfind("mpitrain-train: ", 0) == 0 || line.rfind("mpitrain-trial: ", 0) == 0) last = line.substr(16);
  return last.empty() ? "no error message (see " + log + ")" : last;
}

// A previous sweep driver's trial that is still shutting down (it got SIGTERM when that driver
// died) must be gone before the trial restarts on the same directory.
void wait_gone(pid_t pid) {
  if (pid <= 0) return;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (::kill(pid, 0) == 0 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  if (::kill(pid, 0) == 0) ::kill(pid, SIGKILL);
}

pid_t start(const std::vector<std::string>& argv, const std::string& log, const std::vector<std::string>& extra_env) {
  // The environment is built before fork: the child only execs.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
  env_strings.insert(env_strings.end(), extra_env.begin(), extra_env.end());
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw Error("cannot fork a trial process");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // the sweep driver died: the trial checkpoints and stops
    if (::getppid() != parent) ::_exit(75);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
    ::execve(args[0], args.data(), envp.data());
    std::fprintf(stderr, "mpitrain-train: cannot execute %s\n", args[0]);
    ::_exit(127);
  }
  return pid;
}
}  // namespace

int allocation_slots() {
  if (const char* c = std::getenv("SLURM_CPUS_ON_NODE")) {
    const int nodes = std::getenv("SLURM_JOB_NUM_NODES") ? std::atoi(std::getenv("SLURM_JOB_NUM_NODES")) : 1;
    if (std::atoi(c) > 0) return std::atoi(c) * std::max(1, nodes);
  }
  return int(std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN)));
}

int run_sweep(const std::string& dir, const SweepPlan& plan, const TrialCommand& command, const RunOptions& options) {
  auto log = options.log ? options.log : [](const std::string& s) { std::cout << s << std::endl; };
  const int slots = options.slots > 0 ? options.slots : allocation_slots();
  const int per_trial = plan.workers_per_trial * plan.cpus_per_worker;
  if (per_trial > slots)
    throw ConfigError("a trial needs " + std::to_string(plan.workers_per_trial) + " workers x " +
                      std::to_string(plan.cpus_per_worker) + " CPUs = " + std::to_string(per_trial) +
                      " slots, the allocation has " + std::to_string(slots));
  const size_t concurrent = size_t(slots / per_trial);
  std::vector<const json*> queue;
  for (const auto& t : plan.trials) {
    const std::string id = t.at("id"), tdir = trial_dir(dir, id);
    const json st = read_json(tdir + "/status.json");
    const std::string status = st.is_object() ? st.value("status", "") : "";
    if (status == "finished" || status == "stopped" || status == "failed") continue;
    if (status == "running") {
      wait_gone(st.value("pid", 0));
      // It ran to its end (mpitrain-train writes result.json last) but the driver died before
      // recording that: record it now instead of running it again.
      if (fs::exists(tdir + "/result.json")) {
        json done = st;
        done["status"] = fs::exists(tdir + "/stopped.json") ? "stopped" : "finished";
        done.erase("pid");
        write_json(tdir + "/status.json", done);
        continue;
      }
    }
    queue.push_back(&t);
  }
  log("sweep " + dir + ": " + std::to_string(plan.trials.size()) + " trials, " + std::to_string(queue.size()) +
      " to run, " + std::to_string(concurrent) + " at once (" + std::to_string(slots) + " slots)");
  // On a terminal: a table redrawn in place; elsewhere (Slurm logs) one line per change.
  const bool table = options.live_table < 0 ? ::isatty(1) != 0 : options.live_table > 0;
  std::map<std::string, std::string> state;
  for (const auto& t : plan.trials) {
    const json st = read_json(trial_dir(dir, t.at("id")) + "/status.json");
    if (st.is_object() && st.contains("status")) state[t.at("id")] = st["status"];
  }
  for (const json* t : queue) state[t->at("id")] = "pending";
  size_t table_lines = 0;
  auto last_draw = std::chrono::steady_clock::now();
  auto draw = [&] {
    const std::string text = detail::status_table(dir, plan, state);
    if (table_lines) std::cout << "\033[" << table_lines << "F\033[J";  // back to the table's top, clear
    std::cout << text << std::flush;
    table_lines = size_t(std::count(text.begin(), text.end(), '\n'));
    last_draw = std::chrono::steady_clock::now();
  };
  auto changed = [&](const std::string& line) { table ? draw() : log(line); };
  std::map<pid_t, std::pair<const json*, std::chrono::steady_clock::time_point>> running;
  int failed = 0;
  size_t next = 0;
  while (next < queue.size() || !running.empty()) {
    while (running.size() < concurrent && next < queue.size()) {
      const json& t = *queue[next++];
      const std::string id = t.at("id"), tdir = trial_dir(dir, id);
      fs::create_directories(tdir);
      json st = read_json(tdir + "/status.json");
      const double before = st.is_object() ? st.value("wall_s", 0.0) : 0.0;  // an earlier, killed run
      const pid_t pid = start(command(t), tdir + "/trial.log",
                              options.trial_env ? options.trial_env(t) : std::vector<std::string>{});
      write_json(tdir + "/status.json", {{"status", "running"}, {"pid", pid}, {"wall_s", before}});
      running[pid] = {&t, std::chrono::steady_clock::now()};
      state[id] = "running";
      changed(id + " running " + t.at("config").dump());
    }
    int ws = 0;
    const pid_t pid = ::waitpid(-1, &ws, table ? WNOHANG : 0);
    if (pid == 0) {  // table mode: nothing ended yet; refresh iterations and metrics every second
      if (std::chrono::steady_clock::now() - last_draw > std::chrono::seconds(1)) draw();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    if (pid < 0) {
      if (errno == EINTR) continue;
      throw Error("sweep: waitpid failed");
    }
    auto it = running.find(pid);
    if (it == running.end()) continue;
    const json& t = *it->second.first;
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - it->second.second).count();
    running.erase(it);
    const std::string id = t.at("id"), tdir = trial_dir(dir, id);
    const json old = read_json(tdir + "/status.json");
    json st = {{"wall_s", wall + (old.is_object() ? old.value("wall_s", 0.0) : 0.0)}};
    const int code = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
    if (code == 0) {
      st["status"] = fs::exists(tdir + "/stopped.json") ? "stopped" : "finished";
    } else {
      st["status"] = "failed";
      st["exit_code"] = code;
      st["error"] = last_error(tdir + "/trial.log");
      ++failed;
    }
    write_json(tdir + "/status.json", st);
    char took[32];
    std::snprintf(took, sizeof took, " (%.1f s)", wall);
    state[id] = st["status"].get<std::string>();
    changed(id + " " + st["status"].get<std::string>() + (code ? ": " + st["error"].get<std::string>() : "") + took);
  }
  if (table) draw();
  return failed;
}

}  // namespace mpitrain::tune
