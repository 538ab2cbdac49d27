// ModelCheckpoint (no MPI): when checkpoints are due, their names, the retention policy (keep the k
// newest, keep the top k by a monitored metric), its state for resume, and publish() on a real
// directory (`latest`, the last.h5 hard link, deleting what retention dropped).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>

#include "mpitrain/errors.hpp"
#include "mpitrain/train/callbacks/model_checkpoint.hpp"
#include "../../support/temp_dir.hpp"

namespace mpitrain {
namespace {

namespace fs = std::filesystem;
using Files = std::vector<std::string>;

using test::TempDir;

Files sorted(Files v) {
  std::sort(v.begin(), v.end());
  return v;
}

ModelCheckpointOptions options(int keep_last_k, const std::string& monitor = "", const std::string& mode = "min",
                               int save_top_k = 1) {
  ModelCheckpointOptions o;
  o.keep_last_k = keep_last_k;
  o.monitor = monitor;
  o.mode = mode;
  o.save_top_k = save_top_k;
  return o;
}

std::string config_error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "<no ConfigError>";
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

TEST(ModelCheckpoint, FileNameFormat) {
  EXPECT_EQ(ModelCheckpoint::file_name(0, 0), "epoch=0-step=0.h5");
  EXPECT_EQ(ModelCheckpoint::file_name(3, 1200), "epoch=3-step=1200.h5");
  EXPECT_EQ(ModelCheckpoint::file_name(12, 987654321), "epoch=12-step=987654321.h5");
}

TEST(ModelCheckpoint, DueAfterStep) {
  ModelCheckpointOptions o;
  o.every_n_train_steps = 3;
  ModelCheckpoint mc(o, "/tmp/x");
  EXPECT_FALSE(mc.due_after_step(1));
  EXPECT_FALSE(mc.due_after_step(2));
  EXPECT_TRUE(mc.due_after_step(3));
  EXPECT_FALSE(mc.due_after_step(4));
  EXPECT_TRUE(mc.due_after_step(6));
  EXPECT_TRUE(mc.due_after_step(300));

  o.every_n_train_steps = 0;  // off (the default)
  ModelCheckpoint off(o, "/tmp/x");
  for (int64_t s : {1, 2, 3, 10, 100}) EXPECT_FALSE(off.due_after_step(s)) << s;
  EXPECT_FALSE(ModelCheckpoint(ModelCheckpointOptions{}, "/tmp/x").due_after_step(1));

  o.every_n_train_steps = 1;
  o.enabled = false;
  ModelCheckpoint disabled(o, "/tmp/x");
  EXPECT_FALSE(disabled.enabled());
  for (int64_t s : {1, 2, 3}) EXPECT_FALSE(disabled.due_after_step(s)) << s;
}

TEST(ModelCheckpoint, DueAfterEpoch) {
  ModelCheckpointOptions o;  // every_n_epochs = 1 by default
  ModelCheckpoint every(o, "/tmp/x");
  EXPECT_TRUE(every.enabled());
  for (int64_t e : {0, 1, 2, 7}) EXPECT_TRUE(every.due_after_epoch(e)) << e;

  o.every_n_epochs = 2;  // epoch is the 0-based index of the epoch that ended: 2nd, 4th, ...
  ModelCheckpoint second(o, "/tmp/x");
  EXPECT_FALSE(second.due_after_epoch(0));
  EXPECT_TRUE(second.due_after_epoch(1));
  EXPECT_FALSE(second.due_after_epoch(2));
  EXPECT_TRUE(second.due_after_epoch(3));

  o.every_n_epochs = 0;
  ModelCheckpoint off(o, "/tmp/x");
  for (int64_t e : {0, 1, 2, 3}) EXPECT_FALSE(off.due_after_epoch(e)) << e;

  o.every_n_epochs = 1;
  o.enabled = false;
  ModelCheckpoint disabled(o, "/tmp/x");
  for (int64_t e : {0, 1, 2}) EXPECT_FALSE(disabled.due_after_epoch(e)) << e;
}

TEST(ModelCheckpoint, ValidateRejectsBadValues) {
  EXPECT_NO_THROW(ModelCheckpointOptions{}.validate());
  {
    ModelCheckpointOptions o = options(-1, "val_loss", "max", -1);  // -1: keep all
    EXPECT_NO_THROW(o.validate());
    o.save_top_k = 0;
    EXPECT_NO_THROW(o.validate());
  }
  struct Case {
    std::function<void(ModelCheckpointOptions&)> change;
    std::string names;
  };
  const std::vector<Case> cases = {
      {[](auto& o) { o.every_n_epochs = -1; }, "every_n_epochs"},
      {[](auto& o) { o.every_n_train_steps = -2; }, "every_n_train_steps"},
      {[](auto& o) { o.mode = "avg"; }, "mode"},
      {[](auto& o) { o.mode = ""; }, "mode"},
      {[](auto& o) { o.save_top_k = -2; }, "save_top_k"},
      {[](auto& o) { o.keep_last_k = 0; }, "keep_last_k"},
      {[](auto& o) { o.keep_last_k = -3; }, "keep_last_k"},
  };
  for (const auto& c : cases) {
    ModelCheckpointOptions o;
    c.change(o);
    const std::string m = config_error_of([&] { o.validate(); });
    EXPECT_NE(m.find(c.names), std::string::npos) << c.names << ": " << m;
  }
  ModelCheckpointOptions o;
  o.mode = "avg";
  EXPECT_NE(config_error_of([&] { o.validate(); }).find("'avg'"), std::string::npos);
}

TEST(ModelCheckpoint, OptionsJsonRoundTrip) {
  ModelCheckpointOptions o = options(5, "val_acc", "max", 3);
  o.enabled = false;
  o.dirpath = "/ckpts";
  o.every_n_epochs = 4;
  o.every_n_train_steps = 250;
  o.save_last = false;
  const ModelCheckpointOptions r = ModelCheckpointOptions::from_json(nlohmann::json::parse(o.to_json().dump()));
  EXPECT_EQ(r.to_json(), o.to_json());
  EXPECT_EQ(r.monitor, "val_acc");
  EXPECT_EQ(r.keep_last_k, 5);
  // Missing keys keep their defaults.
  EXPECT_EQ(ModelCheckpointOptions::from_json(nlohmann::json::object()).to_json(), ModelCheckpointOptions{}.to_json());
}

TEST(ModelCheckpoint, KeepLastKWithoutMonitorDropsTheOldest) {
  ModelCheckpoint mc(options(2), "/ckpt");
  EXPECT_EQ(mc.record("a.h5", std::nullopt), Files{});
  EXPECT_EQ(mc.record("b.h5", std::nullopt), Files{});
  EXPECT_EQ(mc.record("c.h5", std::nullopt), Files{"a.h5"});
  EXPECT_EQ(mc.record("d.h5", std::nullopt), Files{"b.h5"});
  EXPECT_EQ(mc.state()["recent"], nlohmann::json({"c.h5", "d.h5"}));
  // Without a monitor, scores are ignored: nothing is "best".
  EXPECT_EQ(mc.record("e.h5", 0.1), Files{"c.h5"});
  EXPECT_EQ(mc.best_path(), "");
  EXPECT_FALSE(mc.best_score().has_value());
}

TEST(ModelCheckpoint, KeepLastKOneAndAll) {
  ModelCheckpoint one(options(1), "/ckpt");
  EXPECT_EQ(one.record("a.h5", std::nullopt), Files{});
  EXPECT_EQ(one.record("b.h5", std::nullopt), Files{"a.h5"});
  EXPECT_EQ(one.record("c.h5", std::nullopt), Files{"b.h5"});

  ModelCheckpoint all(options(-1), "/ckpt");
  for (int i = 0; i < 10; ++i) EXPECT_EQ(all.record(ModelCheckpoint::file_name(i, i * 10), std::nullopt), Files{}) << i;
  EXPECT_EQ(all.state()["recent"].size(), 10u);
}

TEST(ModelCheckpoint, RecordingTheSameFileAgainDoesNotDuplicateIt) {
  // A step checkpoint and the epoch-end checkpoint at the same step share a name.
  ModelCheckpoint mc(options(2), "/ckpt");
  EXPECT_EQ(mc.record("a.h5", std::nullopt), Files{});
  EXPECT_EQ(mc.record("b.h5", std::nullopt), Files{});
  EXPECT_EQ(mc.record("b.h5", std::nullopt), Files{});
  EXPECT_EQ(mc.state()["recent"], nlohmann::json({"a.h5", "b.h5"}));
  EXPECT_EQ(mc.record("c.h5", std::nullopt), Files{"a.h5"});
}

// A rewritten file must not keep its stale score (it once kept x.h5 "best" and dropped y.h5).
TEST(ModelCheckpoint, ReRecordingAScoredFileReplacesItsScore) {
  // The file was rewritten: its old score no longer describes it.
  ModelCheckpoint mc(options(1, "val_loss", "min", 1), "/ckpt");
  EXPECT_EQ(mc.record("x.h5", 0.1), Files{});
  EXPECT_EQ(mc.record("y.h5", 0.5), Files{});
  EXPECT_EQ(mc.record("x.h5", 0.9), Files{}) << "y (0.5) is now the best and must be kept";
  EXPECT_EQ(mc.best_path(), "/ckpt/y.h5");
  EXPECT_EQ(mc.state()["scored"].size(), 2u);
}

TEST(ModelCheckpoint, MonitorMinKeepsTheBestEvenWhenNotNewest) {
  ModelCheckpoint mc(options(1, "val_loss", "min", 1), "/ckpt");
  EXPECT_EQ(mc.record("e0.h5", 0.5), Files{});
  EXPECT_EQ(mc.best_path(), (fs::path("/ckpt") / "e0.h5").string());
  EXPECT_EQ(mc.record("e1.h5", 0.3), Files{"e0.h5"});  // better and newest
  EXPECT_EQ(mc.record("e2.h5", 0.4), Files{});          // newest; e1 is kept as the best
  EXPECT_EQ(mc.best_path(), "/ckpt/e1.h5");
  ASSERT_TRUE(mc.best_score().has_value());
  EXPECT_DOUBLE_EQ(*mc.best_score(), 0.3);
  EXPECT_EQ(mc.record("e3.h5", 0.6), Files{"e2.h5"});  // e2 is neither newest nor best now
  EXPECT_EQ(mc.best_path(), "/ckpt/e1.h5");
  // A step checkpoint (no score) is kept as the newest only.
  EXPECT_EQ(mc.record("s.h5", std::nullopt), Files{"e3.h5"});
  EXPECT_EQ(mc.best_path(), "/ckpt/e1.h5");
  EXPECT_EQ(mc.record("e4.h5", 0.1), sorted({"e1.h5", "s.h5"}));  // new best and newest: the rest go
  EXPECT_EQ(mc.best_path(), "/ckpt/e4.h5");
  EXPECT_DOUBLE_EQ(*mc.best_score(), 0.1);
}

TEST(ModelCheckpoint, MonitorMaxKeepsTheHighest) {
  ModelCheckpoint mc(options(1, "val_acc", "max", 1), "/ckpt");
  EXPECT_EQ(mc.record("e0.h5", 0.70), Files{});
  EXPECT_EQ(mc.record("e1.h5", 0.90), Files{"e0.h5"});
  EXPECT_EQ(mc.record("e2.h5", 0.80), Files{});
  EXPECT_EQ(mc.best_path(), "/ckpt/e1.h5");
  EXPECT_DOUBLE_EQ(*mc.best_score(), 0.90);
  EXPECT_EQ(mc.record("e3.h5", 0.95), sorted({"e1.h5", "e2.h5"}));
  EXPECT_EQ(mc.best_path(), "/ckpt/e3.h5");
  EXPECT_DOUBLE_EQ(*mc.best_score(), 0.95);
}

TEST(ModelCheckpoint, SaveTopKTwoWithKeepLastTwo) {
  // Kept: the file just recorded, the 2 newest and the 2 best (at most 4 files).
  ModelCheckpoint mc(options(2, "val_loss", "min", 2), "/ckpt");
  EXPECT_EQ(mc.record("e0.h5", 1.0), Files{});
  EXPECT_EQ(mc.record("e1.h5", 0.2), Files{});
  EXPECT_EQ(mc.record("e2.h5", 0.3), Files{"e0.h5"});  // neither among the 2 newest nor the 2 best
  EXPECT_EQ(mc.record("e3.h5", 0.9), Files{});         // newest: e2, e3; best: e1, e2
  EXPECT_EQ(mc.record("e4.h5", 0.8), Files{});         // newest: e3, e4; best: e1, e2
  EXPECT_EQ(mc.record("e5.h5", 0.7), Files{"e3.h5"});  // newest: e4, e5; best: e1, e2
  EXPECT_EQ(mc.best_path(), "/ckpt/e1.h5");
  EXPECT_EQ(mc.record("e6.h5", 0.25), sorted({"e2.h5", "e4.h5"}));  // newest: e5, e6; best: e1, e6
  EXPECT_EQ(mc.best_path(), "/ckpt/e1.h5");
  EXPECT_DOUBLE_EQ(*mc.best_score(), 0.2);
}

TEST(ModelCheckpoint, SaveTopKZeroKeepsOnlyTheNewest) {
  ModelCheckpoint mc(options(1, "val_loss", "min", 0), "/ckpt");
  EXPECT_EQ(mc.record("e0.h5", 0.1), Files{});
  EXPECT_EQ(mc.record("e1.h5", 0.5), Files{"e0.h5"});
}

TEST(ModelCheckpoint, StateRoundTripKeepsThePolicy) {
  const ModelCheckpointOptions o = options(1, "val_loss", "min", 2);
  ModelCheckpoint a(o, "/ckpt");
  a.record("e0.h5", 0.5);
  a.record("e1.h5", 0.2);
  a.record("s.h5", std::nullopt);
  a.record("e2.h5", 0.4);

  // Through text, as it travels in the checkpoint's trainer state.
  ModelCheckpoint b(o, "/ckpt");
  b.load_state(nlohmann::json::parse(a.state().dump()));
  EXPECT_EQ(b.state(), a.state());
  EXPECT_EQ(b.best_path(), a.best_path());
  EXPECT_EQ(b.best_path(), "/ckpt/e1.h5");
  EXPECT_EQ(b.best_score(), a.best_score());

  // Both decide the same from here on.
  const std::vector<std::pair<std::string, std::optional<double>>> next = {
      {"e3.h5", 0.1}, {"s2.h5", std::nullopt}, {"e4.h5", 0.9}, {"e5.h5", 0.15}, {"e6.h5", 0.05}};
  for (const auto& [f, s] : next) {
    const Files da = a.record(f, s), db = b.record(f, s);
    EXPECT_EQ(db, da) << f;
    EXPECT_EQ(b.best_path(), a.best_path()) << f;
  }
  EXPECT_EQ(b.state(), a.state());
  EXPECT_EQ(b.best_path(), "/ckpt/e6.h5");

  // An empty state is a fresh start.
  ModelCheckpoint c(o, "/ckpt");
  c.load_state(nlohmann::json::object());
  EXPECT_EQ(c.best_path(), "");
  EXPECT_EQ(c.record("x.h5", 1.0), Files{});
}

TEST(ModelCheckpoint, LoadStateReplacesWhatWasTracked) {
  const ModelCheckpointOptions o = options(1, "val_loss", "min", 1);
  ModelCheckpoint a(o, "/ckpt");
  a.record("old.h5", 0.01);
  ModelCheckpoint fresh(o, "/ckpt");
  fresh.record("e0.h5", 0.5);
  a.load_state(fresh.state());
  EXPECT_EQ(a.state(), fresh.state());
  EXPECT_EQ(a.best_path(), "/ckpt/e0.h5");
  EXPECT_EQ(a.record("e1.h5", 0.7), Files{}) << "e0 is the best";
  EXPECT_EQ(a.record("e2.h5", 0.6), Files{"e1.h5"});
}

void touch(const std::string& path, const std::string& content) { std::ofstream(path) << content; }

TEST(ModelCheckpoint, PublishMovesLatestLinksLastAndDeletesDropped) {
  TempDir dir;
  ModelCheckpointOptions o = options(2);
  ModelCheckpoint mc(o, dir.path.string());
  EXPECT_EQ(mc.dir(), dir.path.string());
  const Files names = {ModelCheckpoint::file_name(0, 10), ModelCheckpoint::file_name(1, 20),
                       ModelCheckpoint::file_name(2, 30), ModelCheckpoint::file_name(3, 40)};
  Files all_dropped;
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string& n = names[i];
    const Files dropped = mc.record(n, std::nullopt);
    touch(dir.file(n), "checkpoint " + std::to_string(i));  // what the Trainer writes and commits
    mc.publish(n, dropped);
    all_dropped.insert(all_dropped.end(), dropped.begin(), dropped.end());

    EXPECT_EQ(slurp(dir.file("latest")), n + "\n") << n;
    ASSERT_TRUE(fs::exists(dir.file("last.h5"))) << n;
    EXPECT_TRUE(fs::equivalent(dir.file("last.h5"), dir.file(n))) << "last.h5 is not a hard link to " << n;
    struct stat a {}, b {};
    ASSERT_EQ(::stat(dir.file("last.h5").c_str(), &a), 0);
    ASSERT_EQ(::stat(dir.file(n).c_str(), &b), 0);
    EXPECT_EQ(a.st_ino, b.st_ino);
    EXPECT_EQ(a.st_nlink, 2u);
    EXPECT_FALSE(fs::is_symlink(dir.file("last.h5")));
    EXPECT_EQ(slurp(dir.file("last.h5")), "checkpoint " + std::to_string(i));
    for (const auto& d : dropped) EXPECT_FALSE(fs::exists(dir.file(d))) << d << " was dropped but not deleted";
    EXPECT_FALSE(fs::exists(dir.file("latest.tmp")));
    EXPECT_FALSE(fs::exists(dir.file("last.h5.tmp")));
  }
  EXPECT_EQ(all_dropped, (Files{names[0], names[1]}));
  // What is left: the two newest, the pointer and the link.
  Files left;
  for (const auto& e : fs::directory_iterator(dir.path)) left.push_back(e.path().filename().string());
  EXPECT_EQ(sorted(left), sorted({names[2], names[3], "last.h5", "latest"}));
}

TEST(ModelCheckpoint, PublishKeepsTheBestAndLastSurvivesItsTarget) {
  TempDir dir;
  ModelCheckpoint mc(options(1, "val_loss", "min", 1), dir.path.string());
  auto save = [&](const std::string& n, std::optional<double> s) {
    const Files dropped = mc.record(n, s);
    touch(dir.file(n), n);
    mc.publish(n, dropped);
    return dropped;
  };
  save("e0.h5", 0.2);
  save("e1.h5", 0.9);  // e0 is kept as the best
  EXPECT_TRUE(fs::exists(dir.file("e0.h5")));
  EXPECT_EQ(slurp(dir.file("latest")), "e1.h5\n");
  EXPECT_TRUE(fs::equivalent(dir.file("last.h5"), dir.file("e1.h5")));
  EXPECT_EQ(save("e2.h5", 0.8), Files{"e1.h5"});
  EXPECT_FALSE(fs::exists(dir.file("e1.h5")));
  EXPECT_TRUE(fs::exists(dir.file("e0.h5")));
  EXPECT_EQ(mc.best_path(), dir.file("e0.h5"));
  EXPECT_EQ(slurp(dir.file("last.h5")), "e2.h5");
}

TEST(ModelCheckpoint, PublishWithoutSaveLastMakesNoLink) {
  TempDir dir;
  ModelCheckpointOptions o = options(1);
  o.save_last = false;
  ModelCheckpoint mc(o, dir.path.string());
  touch(dir.file("a.h5"), "a");
  mc.publish("a.h5", mc.record("a.h5", std::nullopt));
  EXPECT_EQ(slurp(dir.file("latest")), "a.h5\n");
  EXPECT_FALSE(fs::exists(dir.file("last.h5")));
  EXPECT_FALSE(fs::exists(dir.file("last.h5.tmp")));
}

// When last.h5 already links to `file`, rename(last.h5.tmp, last.h5) is a no-op (POSIX: same
// inode); the temporary link must not be left behind.
TEST(ModelCheckpoint, PublishingTheSameFileTwiceLeavesNoTemporary) {
  TempDir dir;
  ModelCheckpoint mc(options(2), dir.path.string());
  touch(dir.file("a.h5"), "a");
  mc.publish("a.h5", mc.record("a.h5", std::nullopt));
  mc.publish("a.h5", mc.record("a.h5", std::nullopt));
  EXPECT_TRUE(fs::equivalent(dir.file("last.h5"), dir.file("a.h5")));
  EXPECT_FALSE(fs::exists(dir.file("last.h5.tmp")));
}

TEST(ModelCheckpoint, PublishIntoAMissingDirectoryIsACheckpointError) {
  TempDir dir;
  ModelCheckpoint mc(options(2), dir.file("no-such-dir"));
  EXPECT_THROW(mc.publish("a.h5", {}), CheckpointError);
}

}  // namespace
}  // namespace mpitrain
