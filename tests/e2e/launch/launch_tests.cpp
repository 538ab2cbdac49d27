// Spawn-mode and SPMD launches of the same binary (DESIGN §1): results, repeated launches that
// leave nothing behind, and workers that throw, abort, exit or are killed.
// Run alone (driver role: Driver.* tests) and under mpirun -n 2 (SPMD role: Spmd.* tests).
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <mpi.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "mpitrain/launch/launcher.hpp"
#include "mpitrain/launch/registry.hpp"
#include "mpitrain/launch/runtime.hpp"

namespace mpitrain {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// A deterministic value every rank contributes; the job's answer is their sum.
double contribution(int rank) { return 1.0 / (rank + 1) + rank * rank; }
double expected_sum(int n) {
  double s = 0;
  for (int r = 0; r < n; ++r) s += contribution(r);
  return s;
}

json sum_ranks(TaskContext& ctx, const json&) {
  double v = contribution(ctx.rank());
  ctx.comm().allreduce(&v, &v, 1, DType::Float64, ReduceOp::Sum);
  ctx.report_metric("sum", v);
  ctx.log("rank " + std::to_string(ctx.rank()) + " done");
  return {{"sum", v}, {"world", ctx.world_size()}};
}
MPITRAIN_REGISTER_ENTRY_POINT("sum_ranks", sum_ranks);

// Rank 1 fails in the way the payload says; the others wait in a collective (and would hang
// there without the driver tearing the job down).
json fail_on_rank1(TaskContext& ctx, const json& p) {
  const std::string how = p.at("how");
  if (ctx.rank() == 1) {
    ctx.report_progress({{"stage", "about to fail"}, {"pid", int(::getpid())}});
    if (how == "throw") throw std::runtime_error("boom from rank 1");
    if (how == "abort") std::abort();
    if (how == "exit") ::_exit(7);
    if (how == "sigkill") {
      for (;;) std::this_thread::sleep_for(100ms);  // the test kills this process
    }
  }
  ctx.comm().barrier();
  return {};
}
MPITRAIN_REGISTER_ENTRY_POINT("fail_on_rank1", fail_on_rank1);

json intra_op_threads(TaskContext& ctx, const json&) {
  int t = at::get_num_threads();
  ctx.comm().allreduce(&t, &t, 1, DType::Int32, ReduceOp::Min);
  return {{"threads", t}, {"device", ctx.env().device}, {"local_size", ctx.env().local_size}};
}
MPITRAIN_REGISTER_ENTRY_POINT("intra_op_threads", intra_op_threads);

int count_entries(const char* dir) {
  int n = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator(dir)) ++n;
  return n;
}

// Processes whose parent is this one (leaders that were never reaped would show up here).
int count_children() {
  int n = 0;
  for (auto& d : std::filesystem::directory_iterator("/proc")) {
    const std::string name = d.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream f(d.path() / "stat");
    std::string s((std::istreambuf_iterator<char>(f)), {});
    auto close = s.rfind(')');
    if (close == std::string::npos) continue;
    char state;
    long ppid;
    std::istringstream rest(s.substr(close + 2));
    if (rest >> state >> ppid && ppid == ::getpid()) ++n;
  }
  return n;
}

bool process_alive(int pid) {
  if (pid <= 0) return false;
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  if (!f) return false;
  std::string s((std::istreambuf_iterator<char>(f)), {});
  auto close = s.rfind(')');
  return close != std::string::npos && s[close + 2] != 'Z';
}

void expect_job_gone(const Result& r) {
  for (int pid : r.worker_pids) EXPECT_FALSE(process_alive(pid)) << "worker pid " << pid << " survived the job";
  EXPECT_EQ(count_children(), 0) << "a leader process was left behind";
}

// ---------------------------------------------------------------- driver (spawn mode)
TEST(Driver, TwoLaunchesInARowBothReturnResults) {
  for (int k = 0; k < 2; ++k) {
    Result r = launch("sum_ranks", {}, {2, 1, false});
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_DOUBLE_EQ(r.value.at("sum").get<double>(), expected_sum(2));
    EXPECT_EQ(r.value.at("world").get<int>(), 2);
    EXPECT_DOUBLE_EQ(r.metrics.at("sum"), expected_sum(2));
    ASSERT_EQ(r.wall_seconds.size(), 2u);
    EXPECT_GT(r.ready_seconds, 0.0);
    expect_job_gone(r);
  }
}

TEST(Driver, FourWorkers) {
  Result r = launch("sum_ranks", {}, {4, 1, false});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_DOUBLE_EQ(r.value.at("sum").get<double>(), expected_sum(4));
  expect_job_gone(r);
}

TEST(Driver, TwentyLaunchesLeaveNoProcessThreadOrDescriptor) {
  launch("sum_ranks", {}, {2, 1, false});  // first launch may create lasting state (e.g. loggers)
  const int fds = count_entries("/proc/self/fd"), threads = count_entries("/proc/self/task");
  for (int k = 0; k < 20; ++k) {
    Result r = launch("sum_ranks", {}, {2, 1, false});
    ASSERT_TRUE(r.ok()) << "launch " << k << ": " << r.error;
    expect_job_gone(r);
  }
  EXPECT_EQ(count_entries("/proc/self/fd"), fds) << "file descriptors leaked";
  EXPECT_EQ(count_entries("/proc/self/task"), threads) << "threads leaked";
  EXPECT_EQ(count_children(), 0);
}

// Issue 16, item 7: launches while processes start and exit around them (the /proc scans of the
// launcher used to throw when a process vanished mid-read). Run by e2e_launch_churn, which sets
// MPITRAIN_TEST_CHURN_LAUNCHES (200); skipped otherwise.
TEST(Driver, ManyLaunchesUnderProcessChurn) {
  const char* n_env = std::getenv("MPITRAIN_TEST_CHURN_LAUNCHES");
  const int n = n_env ? std::atoi(n_env) : 0;
  if (n <= 0) GTEST_SKIP() << "set MPITRAIN_TEST_CHURN_LAUNCHES";
  std::atomic<bool> stop{false};
  std::atomic<long> churned{0};
  std::thread churn([&] {  // short-lived processes, one after another, for the whole test
    while (!stop) {
      const pid_t p = ::fork();
      if (p == 0) ::_exit(0);
      if (p > 0 && ::waitpid(p, nullptr, 0) == p) ++churned;
      ::usleep(500);  // ~1000 a second, without taking a whole core from the launches
    }
  });
  int ok = 0;
  for (int k = 0; k < n; ++k) {
    Result r = launch("sum_ranks", {}, {2, 1, false});
    EXPECT_TRUE(r.ok()) << "launch " << k << ": " << r.error;
    if (r.ok()) ++ok;
    for (int pid : r.worker_pids) EXPECT_FALSE(process_alive(pid)) << "launch " << k << ": worker pid " << pid << " survived";
  }
  stop = true;
  churn.join();
  EXPECT_EQ(count_children(), 0) << "a leader process was left behind";  // the churn's children are reaped by now
  std::printf("%d of %d launches ok while %ld processes started and exited around them\n", ok, n, churned.load());
  EXPECT_GT(churned.load(), long(n)) << "the churn ran";
}

Result launch_failing_impl(const std::string& how, int kill_signal);
Result launch_failing(const std::string& how, int kill_signal = 0) {
  Result r = launch_failing_impl(how, kill_signal);
  std::printf("[%s] driver reports: %s\n", how.c_str(), r.error.c_str());
  return r;
}
Result launch_failing_impl(const std::string& how, int kill_signal) {
  LaunchOptions o;
  o.on_message = [kill_signal](const json& m) {
    if (kill_signal && m.value("type", "") == "progress" && m.value("rank", -1) == 1)
      ::kill(m.at("progress").at("pid").get<int>(), kill_signal);
  };
  return launch("fail_on_rank1", {{"how", how}}, {2, 1, false}, o);
}

TEST(Driver, WorkerExceptionReachesTheDriver) {
  const auto t0 = std::chrono::steady_clock::now();
  Result r = launch_failing("throw");
  EXPECT_EQ(r.error, "rank 1: boom from rank 1");
  EXPECT_EQ(r.failed_rank, 1);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 30s);
  expect_job_gone(r);
}

TEST(Driver, WorkerFailureIsThrownWhenAsked) {
  LaunchOptions o;
  o.throw_on_error = true;
  try {
    launch("fail_on_rank1", {{"how", "throw"}}, {2, 1, false}, o);
    ADD_FAILURE() << "no WorkerFailure";
  } catch (const WorkerFailure& e) {
    EXPECT_STREQ(e.what(), "rank 1: boom from rank 1");
    EXPECT_EQ(e.rank, 1);
  }
  EXPECT_EQ(count_children(), 0);
}

TEST(Driver, WorkerKilledBySigkillIsNamedWithin30s) {
  const auto t0 = std::chrono::steady_clock::now();
  Result r = launch_failing("sigkill", SIGKILL);
  EXPECT_EQ(r.failed_rank, 1) << r.error;
  EXPECT_NE(r.error.find("rank 1: worker process (pid"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("signal 9"), std::string::npos) << r.error;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 30s);
  expect_job_gone(r);
}

TEST(Driver, WorkerCallingAbortIsNamed) {
  Result r = launch_failing("abort");
  EXPECT_EQ(r.failed_rank, 1) << r.error;
  EXPECT_NE(r.error.find("signal 6"), std::string::npos) << r.error;
  expect_job_gone(r);
}

TEST(Driver, WorkerExitingEarlyIsNamed) {
  Result r = launch_failing("exit");
  EXPECT_EQ(r.failed_rank, 1) << r.error;
  EXPECT_NE(r.error.find("rank 1: worker process"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("exited with code 7"), std::string::npos) << r.error;
  expect_job_gone(r);
  // ...and the driver can start the next job.
  Result ok = launch("sum_ranks", {}, {2, 1, false});
  EXPECT_TRUE(ok.ok()) << ok.error;
}

TEST(Driver, CpusPerWorkerSetsLibTorchThreads) {
  for (int cpus : {1, 2}) {
    Result r = launch("intra_op_threads", {}, {2, cpus, false});
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.value.at("threads").get<int>(), cpus);
    EXPECT_EQ(r.value.at("device").get<std::string>(), "cpu");
    EXPECT_EQ(r.value.at("local_size").get<int>(), 2);
  }
}

// No CUDA device here: every worker fails building its communicator with one clear line, and the
// driver gets the kind (ConfigError -> Config: bad input, exit code 2), not a crash.
TEST(Driver, UseGpuWithoutADeviceIsAConfigErrorOfTheWorkers) {
  Result r = launch("sum_ranks", {}, {2, 1, true});
  if (r.ok()) GTEST_SKIP() << "a CUDA device is visible here; this test covers machines without one";
  std::printf("[use_gpu] driver reports: %s\n", r.error.c_str());
  EXPECT_EQ(r.error_kind, ErrorKind::Config) << r.error;
  EXPECT_EQ(exit_code_for(r.error_kind), 2);
  EXPECT_TRUE(r.error.find("sees no CUDA device") != std::string::npos ||
              r.error.find("has no NCCL backend") != std::string::npos)
      << r.error;
  EXPECT_EQ(r.error.find('\n'), std::string::npos) << r.error;
  expect_job_gone(r);
}

TEST(Driver, ConcurrentLaunchesFromTwoThreads) {
  Result a, b;
  std::thread t1([&] { a = launch("sum_ranks", {}, {2, 1, false}); });
  std::thread t2([&] { b = launch("sum_ranks", {}, {3, 1, false}); });
  t1.join();
  t2.join();
  ASSERT_TRUE(a.ok()) << a.error;
  ASSERT_TRUE(b.ok()) << b.error;
  EXPECT_DOUBLE_EQ(a.value.at("sum").get<double>(), expected_sum(2));
  EXPECT_DOUBLE_EQ(b.value.at("sum").get<double>(), expected_sum(3));
  expect_job_gone(a);
  expect_job_gone(b);
}

TEST(Driver, BadInputIsRejectedBeforeAnythingStarts) {
  auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("<no ConfigError>");
  };
  EXPECT_NE(message([] { launch("nope", {}); }).find("unknown entry point 'nope' (registered: fail_on_rank1, intra_op_threads, sum_ranks)"),
            std::string::npos);
  EXPECT_NE(message([] { launch("sum_ranks", {}, {0, 1, false}); }).find("num_workers must be at least 1"),
            std::string::npos);
  EXPECT_NE(message([] { launch("sum_ranks", {}, {-3, 1, false}); }).find("got -3"), std::string::npos);
  LaunchOptions spmd;
  spmd.mode = LaunchMode::Spmd;
  EXPECT_NE(message([&] { launch("sum_ranks", {}, {2, 1, false}, spmd); }).find("not started by mpirun or srun"),
            std::string::npos);
  EXPECT_EQ(count_children(), 0);
}

// ---------------------------------------------------------------- SPMD (mpirun / srun)
TEST(Spmd, SameResultInPlace) {
  const Environment& env = Runtime::current()->env();
  Result r = launch("sum_ranks", {});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_DOUBLE_EQ(r.value.at("sum").get<double>(), expected_sum(env.world_size));
  EXPECT_EQ(r.value.at("world").get<int>(), env.world_size);
  if (env.rank == 0) std::printf("spmd result: %s\n", r.value.dump().c_str());
}

TEST(Spmd, UseGpuWithoutADeviceIsAConfigErrorOnEveryRank) {
  std::string msg = "<no ConfigError>";
  try {
    launch("sum_ranks", {}, {2, 1, true});
    GTEST_SKIP() << "a CUDA device is visible here; this test covers machines without one";
  } catch (const ConfigError& e) {
    msg = e.what();
  }
  EXPECT_TRUE(msg.find("sees no CUDA device") != std::string::npos || msg.find("has no NCCL backend") != std::string::npos)
      << msg;
  // ...and the next launch works: every rank failed at the same point.
  Result r = launch("sum_ranks", {});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_DOUBLE_EQ(r.value.at("sum").get<double>(), expected_sum(Runtime::current()->env().world_size));
}

TEST(Spmd, LauncherVariablesThatDisagreeWithMpiAreNamed) {
  const char* saved = std::getenv("OMPI_COMM_WORLD_SIZE");
  if (!saved) GTEST_SKIP() << "not under Open MPI's mpirun (no OMPI_COMM_WORLD_SIZE to contradict)";
  const std::string keep = saved;
  setenv("OMPI_COMM_WORLD_SIZE", "99", 1);
  try {
    detect_environment(MPI_COMM_WORLD, Role::Spmd);
    ADD_FAILURE() << "no ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("OMPI_COMM_WORLD_SIZE=99 but MPI reports world size"), std::string::npos)
        << e.what();
  }
  setenv("OMPI_COMM_WORLD_SIZE", keep.c_str(), 1);
}

TEST(Spmd, SpawnRequestedUnderALauncherIsRefused) {
  LaunchOptions spawn;
  spawn.mode = LaunchMode::Spawn;
  try {
    launch("sum_ranks", {}, {2, 1, false}, spawn);
    ADD_FAILURE() << "no ConfigError";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    const bool srun = std::getenv("SLURM_STEP_ID") != nullptr;
    EXPECT_NE(m.find(srun ? "Slurm's PMIx cannot MPI_Comm_spawn" : "already one rank of an MPI job"), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace mpitrain

int main(int argc, char** argv) {
  mpitrain::Runtime rt(argc, argv);  // spawned workers serve their task in here and exit
  ::testing::InitGoogleTest(&argc, argv);
  const bool spmd = rt.role() == mpitrain::Role::Spmd;
  if (::testing::GTEST_FLAG(filter) == "*") ::testing::GTEST_FLAG(filter) = spmd ? "Spmd.*" : "Driver.*";
  if (spmd && rt.env().rank != 0) {
    auto& l = ::testing::UnitTest::GetInstance()->listeners();
    delete l.Release(l.default_result_printer());
  }
  return RUN_ALL_TESTS();
}
