// ASHA over rung records in a directory: milestones, the (1 - 1/rf) cutoff against earlier
// trials, max_t, NaN ranked last, a resumed trial not judged twice, and records from concurrent
// processes never interleaved.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>

#include "mpitrain/errors.hpp"
#include "mpitrain/tune/asha.hpp"
#include "../../support/temp_dir.hpp"

namespace mpitrain::tune {
namespace {

AshaOptions opts(double rf = 2, double max_t = 8) {
  AshaOptions o;
  o.metric = "val_loss";
  o.mode = "min";
  o.grace_period = 1;
  o.reduction_factor = rf;
  o.max_t = max_t;
  return o;
}

TEST(Asha, MilestonesAreGraceTimesPowersOfRf) {
  test::TempDir d;
  EXPECT_EQ(Asha(opts(2, 8), d.path.string()).milestones(), (std::vector<double>{1, 2, 4, 8}));
  EXPECT_EQ(Asha(opts(3, 10), d.path.string()).milestones(), (std::vector<double>{1, 3, 9}));
}

TEST(Asha, BelowTheTopHalfStops) {
  test::TempDir d;
  Asha a(opts(), d.path.string());
  EXPECT_EQ(a.on_result("t0", 1, 1.0), Asha::Decision::Continue);  // the first one has nothing to beat
  EXPECT_EQ(a.on_result("t1", 1, 2.0), Asha::Decision::Stop);      // worse than the median of {1.0}
  EXPECT_EQ(a.on_result("t2", 1, 0.5), Asha::Decision::Continue);  // better than the median of {1, 2}
  EXPECT_EQ(a.on_result("t3", 1, 1.6), Asha::Decision::Stop);      // median of {1, 2, 0.5} is 1.0
  EXPECT_EQ(a.on_result("t0", 1.5, 9.0), Asha::Decision::Continue);  // between rungs: no decision
  EXPECT_EQ(a.on_result("t0", 8, 1.0), Asha::Decision::Stop);      // max_t: done
  EXPECT_EQ(a.recorded(1).size(), 4u);
}

TEST(Asha, MaxModeAndNanRankLast) {
  test::TempDir d;
  AshaOptions o = opts();
  o.mode = "max";
  Asha a(o, d.path.string());
  EXPECT_EQ(a.on_result("t0", 1, 0.5), Asha::Decision::Continue);
  EXPECT_EQ(a.on_result("t1", 1, 0.9), Asha::Decision::Continue);
  EXPECT_EQ(a.on_result("t2", 1, NAN), Asha::Decision::Stop);
  EXPECT_EQ(a.on_result("t3", 1, 0.1), Asha::Decision::Stop);
}

TEST(Asha, AResumedTrialIsNotJudgedTwiceAtARung) {
  test::TempDir d;
  Asha a(opts(), d.path.string());
  a.on_result("t0", 1, 0.1);
  EXPECT_EQ(a.on_result("t1", 1, 0.2), Asha::Decision::Stop);
  EXPECT_EQ(a.on_result("t1", 1, 0.2), Asha::Decision::Continue);  // already recorded: rerun after a kill
  EXPECT_EQ(a.recorded(1).size(), 2u);
}

TEST(Asha, ConcurrentProcessesAppendWholeRecords) {
  test::TempDir d;
  const int procs = 4, each = 100;
  for (int p = 0; p < procs; ++p)
    if (fork() == 0) {
      Asha a(opts(2, 1000), d.path.string());
      for (int i = 0; i < each; ++i) a.on_result("p" + std::to_string(p) + "_" + std::to_string(i), 1, double(i));
      _exit(0);
    }
  for (int p = 0; p < procs; ++p) {
    int st = 0;
    wait(&st);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  }
  EXPECT_EQ(Asha(opts(2, 1000), d.path.string()).recorded(1).size(), size_t(procs * each));
}

TEST(Asha, PercentileIsNumpysLinear) {
  EXPECT_DOUBLE_EQ(percentile({1, 2, 3, 4}, 50), 2.5);
  EXPECT_DOUBLE_EQ(percentile({1, 2, 3, 4}, 75), 3.25);
  EXPECT_DOUBLE_EQ(percentile({5}, 50), 5);
}

TEST(Asha, BadOptionsAreConfigErrors) {
  AshaOptions o = opts();
  o.reduction_factor = 1;
  EXPECT_THROW(o.validate(), ConfigError);
  o = opts();
  o.max_t = 0.5;
  EXPECT_THROW(o.validate(), ConfigError);
  o = opts();
  o.time_attr = "minutes";
  EXPECT_THROW(o.validate(), ConfigError);
}

}  // namespace
}  // namespace mpitrain::tune
