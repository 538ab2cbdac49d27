#include "mpitrain/launch/launcher.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <mpi.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <regex>
#include <sstream>

#include "channel.hpp"
#include "mpitrain/comm/mpi_communicator.hpp"
#include "mpitrain/errors.hpp"
#include "mpitrain/launch/registry.hpp"
#include "mpitrain/launch/runtime.hpp"

extern char** environ;

namespace mpitrain {

namespace {

using clock_type = std::chrono::steady_clock;
double since(clock_type::time_point t0) { return std::chrono::duration<double>(clock_type::now() - t0).count(); }

// Logs as lines; progress (reports carrying a "line") redrawn in place on a terminal, one line per
// report otherwise (Slurm logs).
void default_message_handler(const nlohmann::json& m) {
  static const bool tty = ::isatty(2);
  static bool mid_line = false;
  const std::string type = m.value("type", "");
  if (type == "progress" && m.contains("progress") && m["progress"].is_object() && m["progress"].contains("line")) {
    const std::string line = m["progress"].value("line", "");
    if (tty) {
      std::cerr << "\r\033[K" << line << std::flush;
      mid_line = true;
    } else {
      std::cerr << line << std::endl;
    }
  } else if (type == "log") {
    if (mid_line) std::cerr << "\n";
    mid_line = false;
    std::cerr << "[rank " << m.value("rank", -1) << "] " << m.value("line", "") << std::endl;
  }
}

// mpitrain-leader sits next to this library (build tree) or in libexec (install tree).
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

// The fields of /proc/<pid>/stat we need, for every live (non-zombie) process.
struct ProcStat {
  pid_t pid, ppid, session;
};
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

// Pids of the processes in session `sid` (orted starts one with setsid; the workers live there).
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

// One spawn-mode job, driven entirely on the calling thread.
class Job {
 public:
  Job(const std::string& entry, const nlohmann::json& payload, const ScalingConfig& sc, const LaunchOptions& o)
      : scaling_(sc), opts_(o) {
    task_ = {{"entry", entry},
             {"payload", payload},
             {"cpus_per_worker", sc.cpus_per_worker},
             {"use_gpu", sc.use_gpu},
             {"comm_timeout_ms", o.comm_timeout.count()},
             {"print_topology", Runtime::current() && Runtime::current()->print_topology()}};
    if (!opts_.on_message) opts_.on_message = default_message_handler;
    const size_t n = size_t(sc.num_workers);
    channels_.resize(n);
    result_.wall_seconds.assign(n, 0.0);
    result_.worker_pids.assign(n, 0);
    got_result_.assign(n, false);
  }
  ~Job() { teardown(); }

  Result run() {
    t0_ = clock_type::now();
    start_leader();
    while (!finished()) step();
    teardown();
    result_.total_seconds = since(t0_);
    return result_;
  }

 private:
  void start_leader() {
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
    const std::string leader = leader_path(), n = std::to_string(scaling_.num_workers);
    std::vector<std::string> args = {leader, exe, n, listener_.name()};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    // Open MPI settings a lone node needs to spawn (recipes/mpi-root-env.sh), unless the user set them.
    std::vector<std::string> env_store;
    for (char** e = environ; *e; ++e) env_store.emplace_back(*e);
    auto set_default = [&](const std::string& k, const std::string& v) {
      for (auto& e : env_store)
        if (e.rfind(k + "=", 0) == 0) return;
      env_store.push_back(k + "=" + v);
    };
    set_default("OMPI_MCA_rmaps_base_oversubscribe", "1");  // the singleton holds a slot
    set_default("OMPI_MCA_btl_tcp_if_include", "lo");       // spawned jobs are node-local
    set_default("OMPI_MCA_oob_tcp_if_include", "lo");
    if (::geteuid() == 0) {
      set_default("OMPI_ALLOW_RUN_AS_ROOT", "1");
      set_default("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    }
    std::vector<char*> envp;
    for (auto& e : env_store) envp.push_back(e.data());
    envp.push_back(nullptr);
    const int rc = ::posix_spawn(&leader_pid_, leader.c_str(), &fa, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    ::close(err_pipe[1]);
    leader_err_ = err_pipe[0];
    ::fcntl(leader_err_, F_SETFL, O_NONBLOCK);
    if (rc != 0) {
      leader_pid_ = -1;
      throw Error("cannot start " + leader + ": " + std::strerror(rc));
    }
  }

  bool finished() const { return done_; }

  void fail(int rank, const std::string& msg, const std::string& kind = "died") {
    if (!result_.error.empty()) return;  // the first failure is the cause; the rest are fallout
    result_.failed_rank = rank;
    result_.error_kind = kind;
    result_.error = rank >= 0 ? "rank " + std::to_string(rank) + ": " + msg : msg;
    done_ = true;
  }

  void step() {
    std::vector<pollfd> fds = {{listener_.fd(), POLLIN, 0}, {leader_err_, POLLIN, 0}};
    for (auto& c : pending_) fds.push_back({c.fd(), POLLIN, 0});
    for (auto& c : channels_)
      if (c.open()) fds.push_back({c.fd(), POLLIN, 0});
    ::poll(fds.data(), fds.size(), 100);
    read_leader_stderr();
    while (true) {
      detail::LineChannel c = listener_.accept();
      if (!c.open()) break;
      pending_.push_back(std::move(c));
    }
    for (size_t i = 0; i < pending_.size();) {  // connections that have not said hello yet
      bool eof = false;
      auto msgs = pending_[i].receive(&eof);
      if (!msgs.empty() && msgs[0].value("type", "") == "hello") {
        const int r = msgs[0].value("rank", -1);
        if (r < 0 || r >= scaling_.num_workers || channels_[size_t(r)].open()) {
          fail(-1, "protocol error: unexpected hello from rank " + std::to_string(r));
          return;
        }
        result_.worker_pids[size_t(r)] = msgs[0].value("pid", 0);
        channels_[size_t(r)] = std::move(pending_[i]);
        pending_.erase(pending_.begin() + long(i));
        channels_[size_t(r)].send(task_);
        for (size_t k = 1; k < msgs.size(); ++k) handle(r, msgs[k]);
        if (++ready_ == scaling_.num_workers) result_.ready_seconds = since(t0_);
        opts_.on_message(msgs[0]);
        continue;
      }
      if (eof) pending_.erase(pending_.begin() + long(i));
      else ++i;
    }
    read_workers();
    if (done_) return;
    check_leader();
    if (ready_ < scaling_.num_workers && clock_type::now() - t0_ > opts_.startup_timeout)
      fail(-1, "only " + std::to_string(ready_) + " of " + std::to_string(scaling_.num_workers) +
                   " workers started within " + std::to_string(opts_.startup_timeout.count()) + " s" + leader_tail());
    if (results_ == scaling_.num_workers && leader_exited_) done_ = true;
  }

  // Handles what every connected worker sent; a socket closed before the worker's result is a death.
  void read_workers() {
    for (int r = 0; r < scaling_.num_workers && !done_; ++r) {
      auto& c = channels_[size_t(r)];
      if (!c.open()) continue;
      bool eof = false;
      for (auto& m : c.receive(&eof)) handle(r, m);
      if (eof) {
        c.close();
        if (!got_result_[size_t(r)] && !done_) worker_vanished(r);
      }
    }
  }

  void handle(int r, const nlohmann::json& m) {
    const std::string type = m.value("type", "");
    if (type == "metric") result_.metrics[m.value("name", "")] = m.value("value", 0.0);
    if (type == "result") {
      got_result_[size_t(r)] = true;
      ++results_;
      result_.wall_seconds[size_t(r)] = m.value("wall", 0.0);
      if (r == 0) result_.value = m.value("value", nlohmann::json());
    }
    if (type == "error") fail(r, m.value("message", "unknown error"), m.value("kind", "exception"));
    if (type != "heartbeat") opts_.on_message(m);
  }

  // A worker's socket closed before its result: it died. Give the launcher a moment to say how
  // (Open MPI reports the signal or exit code on the leader's stderr), then name rank and cause.
  void worker_vanished(int r) {
    const auto until = clock_type::now() + opts_.failure_report_wait;
    static const std::regex sig(R"(exited on signal (\d+))"), code(R"(Exit code:\s+(\d+))");
    const std::string who = "worker process (pid " + std::to_string(result_.worker_pids[size_t(r)]) + ")";
    std::smatch m;
    for (;;) {
      read_leader_stderr();
      if (std::regex_search(leader_stderr_, m, sig)) return fail(r, who + " was killed by " + signal_text(std::stoi(m[1])));
      if (std::regex_search(leader_stderr_, m, code))
        return fail(r, who + " exited with code " + m[1].str() + " before finishing its task");
      if (clock_type::now() >= until) break;
      ::usleep(20000);
    }
    fail(r, who + " ended before finishing its task (no exit status reported)" + leader_tail());
  }

  void check_leader() {
    if (leader_exited_ || leader_pid_ <= 0) return;
    if (orted_ <= 0) orted_ = child_of(leader_pid_);  // remember Open MPI's daemon: it owns the workers
    int status = 0;
    if (::waitpid(leader_pid_, &status, WNOHANG) != leader_pid_) return;
    leader_exited_ = true;
    leader_pid_ = -1;
    const bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!clean && results_ < scaling_.num_workers) {
      // Let the workers' own reports (error messages, vanished sockets) arrive first: they name the rank.
      const auto until = clock_type::now() + opts_.failure_report_wait;
      while (!done_ && clock_type::now() < until) {
        read_workers();
        ::usleep(20000);
      }
      std::string how = WIFSIGNALED(status) ? "was killed by " + signal_text(WTERMSIG(status))
                                            : "exited with code " + std::to_string(WEXITSTATUS(status));
      fail(-1, "the job's leader " + how + " before the workers finished" + leader_tail());
    }
  }

  void read_leader_stderr() {
    if (leader_err_ < 0) return;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(leader_err_, buf, sizeof buf)) > 0) leader_stderr_.append(buf, size_t(n));
  }

  std::string leader_tail() const {
    if (leader_stderr_.empty()) return "";
    std::string t = leader_stderr_.size() > 600 ? leader_stderr_.substr(leader_stderr_.size() - 600) : leader_stderr_;
    return "; launcher said: " + t;
  }

  // Every process of the job ends here, whatever happened: workers, Open MPI's daemon, leader.
  void teardown() {
    if (torn_down_) return;
    torn_down_ = true;
    for (auto& c : channels_) c.close();
    pending_.clear();
    if (!result_.error.empty() || !leader_exited_) {
      for (int pid : result_.worker_pids)
        if (pid > 0) ::kill(pid, SIGKILL);
      if (orted_ > 0)
        for (pid_t p : session_members(orted_)) ::kill(p, SIGKILL);
      if (leader_pid_ > 0) ::kill(-leader_pid_, SIGKILL);
    }
    if (leader_pid_ > 0) {
      int status = 0;
      ::waitpid(leader_pid_, &status, 0);
      leader_pid_ = -1;
    }
    // The daemon may outlive the leader by a moment; wait for its session to empty.
    const auto until = clock_type::now() + std::chrono::seconds(5);
    while (orted_ > 0 && !session_members(orted_).empty() && clock_type::now() < until) ::usleep(10000);
    if (orted_ > 0)
      for (pid_t p : session_members(orted_)) ::kill(p, SIGKILL);
    read_leader_stderr();
    if (leader_err_ >= 0) ::close(leader_err_);
    leader_err_ = -1;
    if (std::getenv("MPITRAIN_DEBUG_LAUNCH") && !leader_stderr_.empty())
      std::cerr << "mpitrain: leader stderr:\n" << leader_stderr_ << std::endl;
  }

  ScalingConfig scaling_;
  LaunchOptions opts_;
  nlohmann::json task_;
  detail::Listener listener_;
  std::vector<detail::LineChannel> pending_, channels_;
  std::vector<bool> got_result_;
  Result result_;
  clock_type::time_point t0_;
  pid_t leader_pid_ = -1, orted_ = -1;
  int leader_err_ = -1;
  std::string leader_stderr_;
  int ready_ = 0, results_ = 0;
  bool done_ = false, leader_exited_ = false, torn_down_ = false;
};

bool under_slurm_step() {
  const char* step = std::getenv("SLURM_STEP_ID");
  return step && *step && std::getenv("SLURM_PROCID");
}

// SPMD: the entry point runs in place on the launcher's world; rank 0's value goes to everyone.
Result run_in_place(const EntryPoint& fn, const nlohmann::json& payload, const LaunchOptions& o) {
  const Runtime* rt = Runtime::current();
  Result result;
  CommOptions copts;
  copts.timeout = o.comm_timeout;
  MpiCommunicator comm(MPI_COMM_WORLD, copts);
  auto on_message = o.on_message ? o.on_message : default_message_handler;
  const int rank = rt->env().rank;
  TaskContext ctx(rt->env(), comm, [&](const nlohmann::json& m) {
    if (m.value("type", "") == "metric") result.metrics[m.value("name", "")] = m.value("value", 0.0);
    if (rank == 0) on_message(m);  // only rank 0 prints
  });
  const auto t0 = clock_type::now();
  nlohmann::json value = fn(ctx, payload);  // exceptions propagate: Runtime's handler ends every rank
  double wall = since(t0);
  std::string text = rank == 0 ? value.dump() : std::string();
  int64_t len = int64_t(text.size());
  comm.broadcast(&len, 1, DType::Int64, 0);
  text.resize(size_t(len + 3) / 4 * 4, ' ');  // travels as int32 words; JSON ignores the padding
  comm.broadcast(text.data(), int64_t(text.size() / 4), DType::Int32, 0);
  result.value = nlohmann::json::parse(text);
  result.wall_seconds.resize(size_t(comm.size()));
  comm.allgather(&wall, result.wall_seconds.data(), 1, DType::Float64);
  result.total_seconds = wall;
  return result;
}

}  // namespace

Result launch(const std::string& entry, const nlohmann::json& payload, const ScalingConfig& scaling,
              const LaunchOptions& options) {
  const EntryPoint* fn = find_entry_point(entry);
  if (!fn) {
    std::string names;
    for (auto& n : entry_point_names()) names += (names.empty() ? "" : ", ") + n;
    throw ConfigError("unknown entry point '" + entry + "' (registered: " + (names.empty() ? "none" : names) + ")");
  }
  const Runtime* rt = Runtime::current();
  const Role role = rt ? rt->role() : detect_role(0, nullptr);
  if (role == Role::Spmd) {
    if (options.mode == LaunchMode::Spawn)
      throw ConfigError(under_slurm_step()
                            ? "spawn mode requested under srun: Slurm's PMIx cannot MPI_Comm_spawn; run SPMD instead "
                              "(srun -n N --mpi=pmix ./app) or start the driver alone (e.g. as the single task of sbatch)"
                            : "spawn mode requested under mpirun: this process is already one rank of an MPI job; run "
                              "it alone to spawn workers, or let it train in place (SPMD)");
    if (!rt) throw ConfigError("SPMD launch needs an mpitrain::Runtime constructed at the top of main()");
    Result r = run_in_place(*fn, payload, options);
    if (r.value.is_object() && r.value.contains("checkpoint") && r.value["checkpoint"].is_string())
      r.checkpoint = r.value["checkpoint"];
    return r;
  }
  if (role != Role::Driver) throw ConfigError(std::string("launch() called in the ") + role_name(role) + " role");
  if (options.mode == LaunchMode::Spmd)
    throw ConfigError("SPMD mode requested but this process was not started by mpirun or srun");
  if (scaling.num_workers <= 0)
    throw ConfigError("num_workers must be at least 1 (got " + std::to_string(scaling.num_workers) + ")");
  if (scaling.cpus_per_worker <= 0)
    throw ConfigError("cpus_per_worker must be at least 1 (got " + std::to_string(scaling.cpus_per_worker) + ")");
  if (under_slurm_step())
    throw ConfigError("spawn mode under srun: Slurm's PMIx cannot MPI_Comm_spawn; run SPMD instead "
                      "(srun -n N --mpi=pmix ./app)");
  Job job(entry, payload, scaling, options);
  Result r = job.run();
  if (r.value.is_object() && r.value.contains("checkpoint") && r.value["checkpoint"].is_string())
    r.checkpoint = r.value["checkpoint"];
  if (options.throw_on_error && !r.ok()) throw WorkerFailure(r.error, r.failed_rank);
  return r;
}

}  // namespace mpitrain
