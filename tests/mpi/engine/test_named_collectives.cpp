// The Horovod-style engine (DESIGN §3 Engine): named collectives submitted in any order per rank
// agree, fuse and go through the response cache; mismatches and stalls become errors on every
// rank; join handles uneven work; the timeline is valid Chrome-trace JSON.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <set>

#include "../../support/temp_dir.hpp"
#include "mpitrain/comm/agreement.hpp"
#include "mpitrain/comm/mpi_communicator.hpp"
#include "mpitrain/engine/engine.hpp"

namespace mpitrain {
namespace {

using Clock = std::chrono::steady_clock;

CommOptions deadline() {
  CommOptions o;
  o.timeout = std::chrono::seconds(60);  // a hang fails the test instead of CI
  return o;
}

std::string error_of(Engine::Handle h) {
  try {
    h.wait();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "<no exception>";
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

TEST(NamedCollectives, AnyOrderAgreesAndTheCacheTakesOver) {
  MpiCommunicator comm(MPI_COMM_WORLD, deadline());
  Engine engine(comm);
  const int n = comm.size(), r = comm.rank();
  constexpr int kTensors = 20;
  int64_t negotiations_after_warmup = 0;
  for (int round = 0; round < 6; ++round) {
    std::vector<at::Tensor> ts(kTensors);
    std::vector<Engine::Handle> hs(kTensors);
    // Odd ranks submit in reverse order: a fixed bucket order would deadlock or mix tensors up.
    for (int k = 0; k < kTensors; ++k) {
      const int i = r % 2 ? kTensors - 1 - k : k;
      ts[i] = at::full({i + 1, 3}, double(r + i + round), at::kFloat);
      hs[i] = engine.allreduce_async("t" + std::to_string(i), ts[i], i % 2 ? ReduceOp::Sum : ReduceOp::Avg);
    }
    for (int i = 0; i < kTensors; ++i) {
      hs[i].wait();
      const double sum = n * double(i + round) + n * (n - 1) / 2.0;
      EXPECT_DOUBLE_EQ(ts[i].max().item<double>(), i % 2 ? sum : sum / n) << "tensor " << i << " round " << round;
      EXPECT_DOUBLE_EQ(ts[i].min().item<double>(), ts[i].max().item<double>());
      EXPECT_TRUE(hs[i].output().is_same(ts[i]));
    }
    if (round == 1) negotiations_after_warmup = engine.stats().negotiations;
  }
  const EngineStats s = engine.stats();
  EXPECT_EQ(s.negotiations, negotiations_after_warmup) << "after warm-up every cycle agrees through the cache";
  EXPECT_GE(s.cache_hits, 4 * kTensors);
  EXPECT_EQ(s.tensors, 6 * kTensors);
}

TEST(NamedCollectives, GroupedTensorsFuseIntoOneCollectiveWithScales) {
  MpiCommunicator comm(MPI_COMM_WORLD, deadline());
  Engine engine(comm);
  const int n = comm.size(), r = comm.rank();
  std::vector<std::string> names;
  std::vector<at::Tensor> ts;
  for (int i = 0; i < 10; ++i) {
    names.push_back("g" + std::to_string(i));
    ts.push_back(at::full({100 + i}, double(r + 1), i < 5 ? at::kFloat : at::kFloat));
  }
  const EngineStats before = engine.stats();
  engine.grouped_allreduce_async(names, ts, ReduceOp::Sum, {2.0, 0.25}).wait();
  const EngineStats after = engine.stats();
  for (auto& t : ts) EXPECT_DOUBLE_EQ(t.max().item<double>(), 2.0 * 0.25 * n * (n + 1) / 2.0);
  EXPECT_EQ(after.collectives - before.collectives, 1) << "a group is one fused collective";
  EXPECT_GT(after.fused_bytes, before.fused_bytes);
  // Half precision goes through the same path.
  auto h = at::full({7}, 1.0, at::kHalf);
  engine.allreduce("half", h, ReduceOp::Sum);
  EXPECT_DOUBLE_EQ(h.to(at::kFloat).max().item<double>(), n);
}

TEST(NamedCollectives, AllgatherWithRaggedFirstDimensionAndBroadcast) {
  MpiCommunicator comm(MPI_COMM_WORLD, deadline());
  Engine engine(comm);
  const int n = comm.size(), r = comm.rank();
  for (int round = 0; round < 2; ++round) {
    at::Tensor mine = at::full({r + 1, 2}, double(r), at::kDouble);
    at::Tensor all = engine.allgather("rows", mine);
    ASSERT_EQ(all.size(0), n * (n + 1) / 2);
    ASSERT_EQ(all.size(1), 2);
    int64_t row = 0;
    for (int q = 0; q < n; ++q)
      for (int k = 0; k <= q; ++k, ++row) EXPECT_DOUBLE_EQ(all[row][1].item<double>(), q);
  }
  const int root = n - 1;
  at::Tensor b = at::full({5}, r == root ? 42 : -1, at::kLong);
  engine.broadcast("b", b, root);
  EXPECT_EQ(b.min().item<int64_t>(), 42);
  EXPECT_EQ(b.max().item<int64_t>(), 42);
}

TEST(NamedCollectives, ShapeMismatchFailsEveryRankQuicklyNamingBothShapes) {
  MpiCommunicator comm(MPI_COMM_WORLD, deadline());
  Engine engine(comm);
  const int r = comm.rank();
  // Cached first, so the mismatch also has to get past the response cache.
  at::Tensor ok = at::ones({3}, at::kFloat);
  engine.allreduce("w", ok);
  const auto start = Clock::now();
  at::Tensor bad = at::ones({r == 1 ? 4 : 3}, at::kFloat);
  const std::string msg = error_of(engine.allreduce_async("w", bad));
  EXPECT_LT(seconds_since(start), 5.0);
  EXPECT_NE(msg.find("'w'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("rank 0 float32[3]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("rank 1 float32[4]"), std::string::npos) << msg;
  // A dtype mismatch on a fresh name, and the engine still works afterwards.
  at::Tensor d = r == 0 ? at::ones({2}, at::kDouble) : at::ones({2}, at::kFloat);
  const std::string dmsg = error_of(engine.allreduce_async("d", d));
  EXPECT_NE(dmsg.find("float64"), std::string::npos) << dmsg;
  EXPECT_NE(dmsg.find("float32"), std::string::npos) << dmsg;
  at::Tensor again = at::ones({3}, at::kFloat);
  engine.allreduce("w", again, ReduceOp::Sum);
  EXPECT_DOUBLE_EQ(again.max().item<double>(), comm.size());
}

TEST(NamedCollectives, StallInspectorNamesTheMissingRankThenShutsDown) {
  MpiCommunicator comm(MPI_COMM_WORLD, deadline());
  EngineOptions o;
  o.stall_check = std::chrono::seconds(1);
  o.stall_shutdown = std::chrono::seconds(3);
  const int n = comm.size(), r = comm.rank(), last = n - 1;
  std::string msg;
  const auto start = Clock::now();
  {
    Engine engine(comm, o);
    at::Tensor t = at::ones({4}, at::kFloat);
    // Cached first: a stall must be found on the cache path too.
    engine.allreduce("x", t);
    // The last rank never submits "x" again; it waits on "y", which nobody else submits.
    msg = error_of(r == last ? engine.allreduce_async("y", t) : engine.allreduce_async("x", t));
  }
  EXPECT_LT(seconds_since(start), 15.0);
  EXPECT_NE(msg.find("stall"), std::string::npos) << msg;
  EXPECT_NE(msg.find("tensor 'x'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing ranks " + std::to_string(last)), std::string::npos) << msg;
  EXPECT_NE(msg.find("tensor 'y'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("submitted by ranks " + std::to_string(last)), std::string::npos) << msg;
}

TEST(NamedCollectives, JoinWithUnevenWorkSumsOverTheRanksStillWorking) {
  MpiCommunicator comm(MPI_COMM_WORLD, deadline());
  Engine engine(comm);
  const int n = comm.size(), r = comm.rank();
  const int steps = 2 * (r + 1);  // rank n-1 works longest
  for (int k = 0; k < steps; ++k) {
    int active = 0;
    double value_sum = 0;
    for (int q = 0; q < n; ++q)
      if (2 * (q + 1) > k) {
        ++active;
        value_sum += q + 1;
      }
    at::Tensor s = at::ones({6}, at::kFloat);
    at::Tensor a = at::full({6}, double(r + 1), at::kFloat);
    engine.allreduce("sum", s, ReduceOp::Sum);
    engine.allreduce("avg", a, ReduceOp::Avg);
    EXPECT_DOUBLE_EQ(s.max().item<double>(), active) << "step " << k;
    EXPECT_NEAR(a.max().item<double>(), value_sum / active, 1e-6) << "step " << k;
  }
  EXPECT_EQ(engine.join(), n - 1);
  // After a join everyone is back: a full sum again.
  at::Tensor s = at::ones({2}, at::kFloat);
  engine.allreduce("after", s, ReduceOp::Sum);
  EXPECT_DOUBLE_EQ(s.max().item<double>(), n);
}

TEST(NamedCollectives, TimelineIsChromeTraceJsonWithEveryTensor) {
  MpiCommunicator comm(MPI_COMM_WORLD, deadline());
  test::TempDir dir;
  std::string path = dir.file("timeline.json");
  broadcast_bytes(comm, path, 0);  // rank 0's directory: it writes the file
  {
    EngineOptions o;
    o.timeline = path;
    Engine engine(comm, o);
    for (int round = 0; round < 3; ++round) {
      std::vector<Engine::Handle> hs;
      std::vector<at::Tensor> ts;
      for (int i = 0; i < 4; ++i) ts.push_back(at::ones({64}, at::kFloat));
      for (int i = 0; i < 4; ++i) hs.push_back(engine.allreduce_async("tl" + std::to_string(i), ts[i]));
      for (auto& h : hs) h.wait();
    }
  }
  if (comm.rank() != 0) return;
  std::ifstream in(path);
  ASSERT_TRUE(in.good()) << path;
  const nlohmann::json trace = nlohmann::json::parse(in);
  std::map<int, std::string> tracks;
  std::map<std::string, std::set<std::string>> phases;
  for (const auto& e : trace.at("traceEvents"))
    if (e.at("ph") == "M") tracks[e.at("tid").get<int>()] = e.at("args").at("name");
  for (const auto& e : trace.at("traceEvents"))
    if (e.at("ph") == "X") phases[tracks.at(e.at("tid").get<int>())].insert(e.at("name").get<std::string>());
  for (int i = 0; i < 4; ++i) {
    const auto& p = phases["tl" + std::to_string(i)];
    EXPECT_TRUE(p.count("NEGOTIATE")) << i;
    EXPECT_TRUE(p.count("QUEUE")) << i;
    EXPECT_TRUE(p.count("ALLREDUCE")) << i;
  }
}

TEST(NamedCollectives, TinyCacheEvictsAndStaysCorrect) {
  MpiCommunicator comm(MPI_COMM_WORLD, deadline());
  EngineOptions o;
  o.cache_capacity = 2;
  Engine engine(comm, o);
  const int n = comm.size(), r = comm.rank();
  for (int round = 0; round < 5; ++round) {
    std::vector<at::Tensor> ts;
    std::vector<Engine::Handle> hs;
    for (int i = 0; i < 6; ++i) ts.push_back(at::full({i + 2}, double(r * 10 + i), at::kDouble));
    for (int k = 0; k < 6; ++k) {
      const int i = (k + r + round) % 6;  // a different order on every rank and round
      hs.push_back(engine.allreduce_async("c" + std::to_string(i), ts[i], ReduceOp::Sum));
    }
    for (auto& h : hs) h.wait();
    for (int i = 0; i < 6; ++i) EXPECT_DOUBLE_EQ(ts[i].max().item<double>(), 10.0 * n * (n - 1) / 2 + n * i);
  }
  // At most 2 of the 6 names per round can come from a cache of 2: the rest is renegotiated.
  EXPECT_GE(engine.stats().cache_misses, 5 * 4);
  EXPECT_GE(engine.stats().negotiations, 5);
}

TEST(NamedCollectives, FifoOperationsInterleaveWithNamedOnes) {
  MpiCommunicator comm(MPI_COMM_WORLD, deadline());
  Engine engine(comm);
  const int n = comm.size();
  int64_t x = 1;
  at::Tensor t = at::ones({3}, at::kFloat);
  Engine::Handle named = engine.allreduce_async("n", t, ReduceOp::Sum);
  Engine::Handle fifo = engine.allreduce(&x, 1, DType::Int64, ReduceOp::Sum);
  engine.synchronize();
  fifo.wait();
  named.wait();
  EXPECT_EQ(x, n);
  EXPECT_DOUBLE_EQ(t.max().item<double>(), n);
}

TEST(NamedCollectives, BadInputIsAnArgumentError) {
  MpiCommunicator comm(MPI_COMM_WORLD, deadline());
  Engine engine(comm);
  at::Tensor t = at::ones({4, 3}, at::kFloat);
  EXPECT_THROW(engine.allreduce_async("", t), ArgumentError);
  EXPECT_THROW(engine.allreduce_async("u", at::Tensor()), ArgumentError);
  EXPECT_THROW(engine.allreduce_async("nc", t.t()), ArgumentError);
  EXPECT_THROW(engine.allreduce_async("b", at::ones({2}, at::kBool)), ArgumentError);
  EXPECT_THROW(engine.allreduce_async("i", at::ones({2}, at::kInt), ReduceOp::Avg), ArgumentError);
  EXPECT_THROW(engine.allreduce_async("m", t, ReduceOp::Max, {2.0, 1.0}), ArgumentError);
  EXPECT_THROW(engine.broadcast_async("r", t, comm.size()), ArgumentError);
  EXPECT_THROW(engine.grouped_allreduce_async({"a", "a"}, {t, t}), ArgumentError);
  // A duplicate in-flight name is refused at once; the first completes. The name must still be in
  // flight when the duplicate comes, so the ranks that check submit first and the others only
  // after a (FIFO) barrier: once for the ranks other than 0, once for rank 0.
  for (bool rank0_checks : {false, true}) {
    const std::string name = rank0_checks ? "dup0" : "dup";
    const bool checks = (comm.rank() == 0) == rank0_checks;
    at::Tensor u = at::ones({2}, at::kFloat), v = at::ones({2}, at::kFloat);
    Engine::Handle first;
    if (checks) {
      first = engine.allreduce_async(name, u, ReduceOp::Sum);
      try {
        engine.allreduce_async(name, v, ReduceOp::Sum);
        ADD_FAILURE() << "a duplicate in-flight name was accepted";
      } catch (const ArgumentError& e) {
        EXPECT_NE(std::string(e.what()).find("already in flight"), std::string::npos) << e.what();
      }
    }
    engine.enqueue([](Communicator& c) { c.barrier(); }).wait();
    if (!checks) first = engine.allreduce_async(name, u, ReduceOp::Sum);
    first.wait();
    EXPECT_DOUBLE_EQ(u.max().item<double>(), comm.size());
    engine.allreduce(name, v, ReduceOp::Sum);  // once completed, the name is free again
    EXPECT_DOUBLE_EQ(v.max().item<double>(), comm.size());
  }
  // Named collectives need a coordinator.
  EngineOptions fifo;
  fifo.mode = EngineMode::Fifo;
  Engine plain(comm, fifo);
  EXPECT_THROW(plain.allreduce_async("x", t), ArgumentError);
  EngineOptions bad;
  bad.fusion_threshold = 10;
  EXPECT_THROW(Engine(comm, bad), ConfigError);
}

}  // namespace
}  // namespace mpitrain
