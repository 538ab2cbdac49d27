// mpitrain-leader: where it lives, the Open MPI settings it needs, posix_spawn, ending the job's
// processes, and the regexes over Open MPI's reports on its stderr.
#include "leader_process.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <regex>
#include <vector>

#include "mpitrain/errors.hpp"
#include "process_table.hpp"

extern char** environ;

namespace mpitrain::detail {

std::string leader_path() {
  if (const char* env = std::getenv("MPITRAIN_LEADER")) return env;
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&leader_path), &info) && info.dli_fname) {
    std::filesystem::path lib = std::filesystem::canonical(info.dli_fname).parent_path();
    for (auto p : {lib / "mpitrain-leader", lib / ".." / "libexec" / "mpitrain" / "mpitrain-leader",
                   lib / ".." / ".." / "libexec" / "mpitrain" / "mpitrain-leader"})
      if (std::filesystem::exists(p)) return p.string();
  }
  throw ConfigError("cannot find the mpitrain-leader program next to libmpitrain_launch (set MPITRAIN_LEADER)");
}

namespace {
// This process's environment plus the Open MPI settings a lone node needs to spawn
// (recipes/mpi-root-env.sh), unless the user set them.
std::vector<std::string> leader_environment() {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) env.emplace_back(*e);
  auto set_default = [&](const std::string& k, const std::string& v) {
    for (auto& e : env)
      if (e.rfind(k + "=", 0) == 0) return;
    env.push_back(k + "=" + v);
  };
  set_default("OMPI_MCA_rmaps_base_oversubscribe", "1");  // the singleton holds a slot
  set_default("OMPI_MCA_btl_tcp_if_include", "lo");       // spawned jobs are node-local
  set_default("OMPI_MCA_oob_tcp_if_include", "lo");
  if (::geteuid() == 0) {
    set_default("OMPI_ALLOW_RUN_AS_ROOT", "1");
    set_default("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
  }
  return env;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}
}  // namespace

LeaderProcess start_leader(int num_workers, const std::string& channel) {
  const std::string leader = leader_path();  // before anything that would need cleaning up
  int err_pipe[2];
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) throw Error(std::string("pipe: ") + std::strerror(errno));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  const std::string exe = std::filesystem::read_symlink("/proc/self/exe").string();
  std::vector<std::string> args = {leader, exe, std::to_string(num_workers), channel}, env = leader_environment();
  std::vector<char*> argv = pointers(args), envp = pointers(env);
  LeaderProcess p;
  const int rc = ::posix_spawn(&p.pid, leader.c_str(), &fa, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(err_pipe[1]);
  if (rc != 0) {
    ::close(err_pipe[0]);
    throw Error("cannot start " + leader + ": " + std::strerror(rc));
  }
  p.stderr_fd = err_pipe[0];
  ::fcntl(p.stderr_fd, F_SETFL, O_NONBLOCK);
  return p;
}

namespace {
void kill_session(pid_t sid) {
  if (sid > 0)
    for (pid_t p : session_members(sid)) ::kill(p, SIGKILL);
}
}  // namespace

void end_job_processes(LeaderProcess& leader, pid_t orted, const std::vector<int>& worker_pids, bool kill) {
  if (kill) {
    for (int pid : worker_pids)
      if (pid > 0) ::kill(pid, SIGKILL);
    kill_session(orted);
    if (leader.pid > 0) ::kill(-leader.pid, SIGKILL);
  }
  if (leader.pid > 0) {
    int status = 0;
    ::waitpid(leader.pid, &status, 0);
    leader.pid = -1;
  }
  // The daemon may outlive the leader by a moment; wait for its session to empty.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (orted > 0 && !session_members(orted).empty() && std::chrono::steady_clock::now() < until) ::usleep(10000);
  kill_session(orted);
}

void read_leader_stderr(int fd, std::string& text) {
  if (fd < 0) return;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) text.append(buf, size_t(n));
}

std::string launcher_tail(const std::string& text) {
  if (text.empty()) return "";
  return "; launcher said: " + (text.size() > 600 ? text.substr(text.size() - 600) : text);
}

std::string worker_exit_report(const std::string& text) {
  static const std::regex sig(R"(exited on signal (\d+))"), code(R"(Exit code:\s+(\d+))");
  std::smatch m;
  if (std::regex_search(text, m, sig)) return "was killed by " + signal_text(std::stoi(m[1]));
  if (std::regex_search(text, m, code)) return "exited with code " + m[1].str() + " before finishing its task";
  return "";
}

}  // namespace mpitrain::detail
