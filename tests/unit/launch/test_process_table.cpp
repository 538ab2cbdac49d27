// The /proc table under churn: processes start and exit while it is read (issue 16 item 7: an
// ifstream read of a process that had just exited threw std::ios_failure out of the launcher).
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "process_table.hpp"

namespace mpitrain::detail {
namespace {

TEST(ProcessTable, SurvivesProcessesExitingWhileItReads) {
  std::atomic<bool> stop{false};
  std::atomic<int> started{0};
  std::thread churn([&] {  // short-lived children, as many as the machine makes in the time
    while (!stop) {
      const pid_t p = ::fork();
      if (p == 0) ::_exit(0);
      if (p > 0) {
        ++started;
        ::waitpid(p, nullptr, 0);
      }
    }
  });
  size_t scans = 0;
  bool saw_self = true;
  for (; scans < 300 || started < 200; ++scans) {
    std::vector<ProcStat> table;
    ASSERT_NO_THROW(table = processes());
    saw_self = saw_self && std::any_of(table.begin(), table.end(), [](const ProcStat& p) { return p.pid == ::getpid(); });
    if (scans > 20000) break;
  }
  stop = true;
  churn.join();
  EXPECT_TRUE(saw_self) << "every scan lists this process";
  EXPECT_GE(started.load(), 200) << "the churn ran during the scans";
}

TEST(ProcessTable, ChildOfAndSessionMembersFindARealChild) {
  const pid_t p = ::fork();
  if (p == 0) {
    ::pause();
    ::_exit(0);
  }
  ASSERT_GT(p, 0);
  EXPECT_EQ(child_of(::getpid()), p);
  const auto members = session_members(::getsid(0));
  EXPECT_NE(std::find(members.begin(), members.end(), p), members.end());
  ::kill(p, SIGKILL);
  ::waitpid(p, nullptr, 0);
  EXPECT_EQ(child_of(::getpid()), -1) << "a reaped child is gone from the table";
}

}  // namespace
}  // namespace mpitrain::detail
