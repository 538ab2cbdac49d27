// The sweep's live status table: rows from each trial's progress.jsonl and the runner's statuses.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include "mpitrain/tune/tune_report.hpp"
#include "status_table.hpp"

namespace mpitrain::tune {
namespace {

TEST(StatusTable, RowsShowStatusIterationsLastMetricAndConfig) {
  const std::string dir = ::testing::TempDir() + "/status-table-" + std::to_string(::getpid());
  std::filesystem::create_directories(trial_dir(dir, "t0000"));
  {
    std::ofstream p(trial_dir(dir, "t0000") + "/progress.jsonl");
    p << R"({"epoch":1,"val_loss":0.9})" << "\n" << R"({"epoch":2,"val_loss":0.4321})" << "\n" << R"({"epoch":3,"va)";
  }
  SweepPlan plan;
  plan.metric = "val_loss";
  plan.trials = {{{"id", "t0000"}, {"config", {{"lr", 0.1}}}}, {{"id", "t0001"}, {"config", {{"lr", 0.01}}}}};
  const std::string text = detail::status_table(dir, plan, {{"t0000", "running"}});
  EXPECT_NE(text.find("== Status == " + dir + ": 1 running, 1 pending, 0 finished, 0 stopped, 0 failed"), std::string::npos) << text;
  EXPECT_NE(text.find("t0000    running       2       0.4321  {\"lr\":0.1}"), std::string::npos) << text;  // cut line ignored
  EXPECT_NE(text.find("t0001    pending       0            -  {\"lr\":0.01}"), std::string::npos) << text;
  // Long configs are cut to the width.
  plan.trials[1]["config"] = {{"note", std::string(300, 'x')}};
  for (const auto& line : {detail::status_table(dir, plan, {}, 80)}) {
    std::istringstream in(line);
    std::string row;
    while (std::getline(in, row))
      if (row.rfind("t000", 0) == 0) EXPECT_LE(row.size(), 80u) << row;
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace mpitrain::tune
