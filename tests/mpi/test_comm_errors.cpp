// Failure behaviour: bad arguments raise ArgumentError naming the problem; a rank that skips a
// collective turns into CommError on its peers within the deadline (never a hang); ranks that
// call different collectives are told so.
#include <gtest/gtest.h>

#include <functional>
#include <thread>

#include "mpitrain/comm/mpi_communicator.hpp"
#include "test_util.hpp"

namespace mpitrain::test {
namespace {

using namespace std::chrono_literals;

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "<no exception>";
}

#define EXPECT_THROW_WITH(stmt, type, text)                                      \
  do {                                                                           \
    std::string msg_ = error_of([&] { stmt; });                                  \
    EXPECT_THROW(stmt, type);                                                    \
    EXPECT_NE(msg_.find(text), std::string::npos) << "message was: " << msg_;    \
  } while (0)

TEST(CommErrors, BadArgumentsNameTheProblem) {
  MpiCommunicator comm(MPI_COMM_WORLD, {});
  float x[4] = {1, 2, 3, 4};
  EXPECT_THROW_WITH(comm.allreduce(x, x, -5, DType::Float32, ReduceOp::Sum), ArgumentError, "negative count -5");
  EXPECT_THROW_WITH(comm.allreduce(x, x, 4, DType::Int32, ReduceOp::Avg), ArgumentError, "avg is not supported for int32");
  EXPECT_THROW_WITH(comm.allreduce(x, x, 4, DType(99), ReduceOp::Sum), ArgumentError, "unknown dtype");
  EXPECT_THROW_WITH(comm.allreduce(x, x, 4, DType::Float32, ReduceOp(42)), ArgumentError, "unknown reduction");
  EXPECT_THROW_WITH(comm.allreduce(nullptr, x, 4, DType::Float32, ReduceOp::Sum), ArgumentError, "null buffer");
  EXPECT_THROW_WITH(comm.broadcast(x, 4, DType::Float32, comm.size()), ArgumentError, "root");
  EXPECT_THROW_WITH(comm.broadcast(x, -1, DType::Float32, 0), ArgumentError, "negative count");
  EXPECT_THROW_WITH(comm.allgatherv(x, x, {1}, DType::Float32), ArgumentError, "counts has 1 entries");
  EXPECT_THROW_WITH(comm.reduce_scatter(x, x, -2, DType::Float32, ReduceOp::Sum), ArgumentError, "negative count");
  EXPECT_THROW_WITH(parse_dtype("complex64"), ArgumentError, "unknown dtype 'complex64'");
  // Argument errors start nothing: the communicator still works afterwards.
  comm.allreduce(x, x, 4, DType::Float32, ReduceOp::Sum);
  EXPECT_EQ(x[0], float(comm.size()));
}

// The last rank skips a collective: every other rank gets CommError naming the collective,
// its sequence number, the rank and world size, within the (short) deadline.
void expect_skip_detected(const char* what, const std::function<void(MpiCommunicator&)>& op,
                          const std::function<void(MpiCommunicator&)>& late_join) {
  CommOptions o;
  o.timeout = 700ms;
  MpiCommunicator comm(MPI_COMM_WORLD, o);
  const int skipper = comm.size() - 1;
  comm.barrier();
  if (comm.rank() != skipper) {
    const auto t0 = std::chrono::steady_clock::now();
    std::string msg = error_of([&] { op(comm); });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
    EXPECT_NE(msg.find(" #1 "), std::string::npos) << "sequence number missing: " << msg;
    EXPECT_NE(msg.find("rank " + std::to_string(comm.rank()) + " (world size " + std::to_string(comm.size()) + ")"),
              std::string::npos) << msg;
    EXPECT_NE(msg.find("did not complete within the deadline of 0.700 s"), std::string::npos) << msg;
    EXPECT_GE(s, 0.65);
    EXPECT_LT(s, 5.0) << "CommError came " << s << " s after the call";
    // Poisoned: the next call fails at once instead of hanging.
    float y = 1;
    EXPECT_THROW_WITH(comm.allreduce(&y, &y, 1, DType::Float32, ReduceOp::Sum), CommError, "unusable");
  }
  MPI_Barrier(MPI_COMM_WORLD);
  if (comm.rank() == skipper && late_join) late_join(comm);  // completes peers' abandoned MPI requests
}

TEST(CommErrors, SkippedSharedMemoryAllreduceTimesOut) {
  float v[3] = {1, 2, 3};
  expect_skip_detected("allreduce", [&](MpiCommunicator& c) { c.allreduce(v, v, 3, DType::Float32, ReduceOp::Sum); }, {});
}

TEST(CommErrors, SkippedLargeAllreduceNamesMissingRank) {
  std::vector<float> v(300000, 1.0f);
  CommOptions o;
  o.timeout = 700ms;
  MpiCommunicator comm(MPI_COMM_WORLD, o);
  const int skipper = comm.size() - 1;
  comm.barrier();
  if (comm.rank() != skipper) {
    std::string msg = error_of([&] { comm.allreduce(v.data(), v.data(), 300000, DType::Float32, ReduceOp::Sum); });
    // Inside the skipper's node the missing rank is named; other nodes only see the MPI step stall.
    const bool named = msg.find("rank(s) " + std::to_string(skipper)) != std::string::npos;
    const bool other_node = comm.node_count() > 1 && msg.find("other nodes") != std::string::npos;
    EXPECT_TRUE(named || other_node) << msg;
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST(CommErrors, SkippedMpiBroadcastTimesOut) {
  std::vector<int32_t> v(16, 7);
  // The skipper is the root, so no other rank can finish; it joins late so requests complete.
  expect_skip_detected(
      "broadcast",
      [&](MpiCommunicator& c) { c.broadcast(v.data(), 16, DType::Int32, c.size() - 1); },
      // Peers gave up before their data call (their agreement check timed out): the late root
      // times out too; it only has to complete the peers' abandoned check requests.
      [&](MpiCommunicator& c) { error_of([&] { c.broadcast(v.data(), 16, DType::Int32, c.size() - 1); }); });
}

TEST(CommErrors, MismatchedCallsAreNamed) {
  CommOptions o;
  o.timeout = 10s;
  MpiCommunicator comm(MPI_COMM_WORLD, o);
  for (size_t base : {size_t(100000), size_t(10)}) {  // small path and pipelined path
    MpiCommunicator c(MPI_COMM_WORLD, o);
    std::vector<float> v(base + 2, 1.0f);
    const int64_t count = int64_t(base) + (c.rank() == 0 ? 0 : 2);
    std::string msg = error_of([&] { c.allreduce(v.data(), v.data(), count, DType::Float32, ReduceOp::Sum); });
    EXPECT_NE(msg.find("ranks disagree"), std::string::npos) << msg;
    EXPECT_NE(msg.find("allreduce #0 ("), std::string::npos) << msg;
    MPI_Barrier(MPI_COMM_WORLD);
  }
  // Different ops on the same count are caught too.
  std::vector<float> v(8, 1.0f);
  std::string msg = error_of([&] {
    comm.allreduce(v.data(), v.data(), 8, DType::Float32, comm.rank() == 0 ? ReduceOp::Sum : ReduceOp::Max);
  });
  EXPECT_NE(msg.find("ranks disagree"), std::string::npos) << msg;
  MPI_Barrier(MPI_COMM_WORLD);
}

// Issue 16 item 6: collectives that go through MPI (not shared memory) agree on what was called
// before moving data; every rank raises the same message naming rank 0 and the first rank that
// differs, and the communicator is poisoned (no hang, no garbage).
void expect_mpi_mismatch_named(const std::string& what, const std::function<void(MpiCommunicator&)>& op,
                               const std::string& extra = "", UserBufferPath path = UserBufferPath::Auto) {
  CommOptions o;
  o.timeout = 20s;
  o.user_path = path;
  MpiCommunicator comm(MPI_COMM_WORLD, o);
  const auto t0 = std::chrono::steady_clock::now();
  std::string msg = error_of([&] { op(comm); });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const int last = comm.size() - 1;
  EXPECT_NE(msg.find("ranks disagree on a collective: rank 0 called " + what), std::string::npos) << msg;
  EXPECT_NE(msg.find("but rank " + std::to_string(last) + " called " + what), std::string::npos) << msg;
  if (!extra.empty()) EXPECT_NE(msg.find(extra), std::string::npos) << msg;
  EXPECT_LT(s, 10.0) << "mismatch found only after " << s << " s";
  // Every rank has the same message: gather their lengths and compare with rank 0's.
  int len = int(msg.size()), len0 = len;
  MPI_Bcast(&len0, 1, MPI_INT, 0, MPI_COMM_WORLD);
  EXPECT_EQ(len, len0) << msg;
  float y = 1;
  EXPECT_THROW_WITH(comm.allreduce(&y, &y, 1, DType::Float32, ReduceOp::Sum), CommError, "unusable");
  MPI_Barrier(MPI_COMM_WORLD);
}

// Only the last rank differs, so rank 0 and rank `last` are named.
int64_t last_differs(MpiCommunicator& c, int64_t n, int64_t delta) { return c.rank() == c.size() - 1 ? n + delta : n; }

TEST(CommErrors, MismatchedBroadcastCountIsNamed) {
  std::vector<int32_t> v(32, 1);
  expect_mpi_mismatch_named("broadcast #0 (", [&](MpiCommunicator& c) {
    c.broadcast(v.data(), last_differs(c, 16, 1), DType::Int32, 0);
  });
}

TEST(CommErrors, MismatchedBroadcastRootIsNamed) {
  std::vector<int32_t> v(16, 1);
  expect_mpi_mismatch_named("broadcast #0 (16 x int32 from root ", [&](MpiCommunicator& c) {
    c.broadcast(v.data(), 16, DType::Int32, c.rank() == c.size() - 1 ? 1 : 0);
  }, "from root 1");
}

TEST(CommErrors, MismatchedAllgatherIsNamed) {
  std::vector<float> send(8, 1.0f), recv(8 * 16, 0.0f);
  expect_mpi_mismatch_named("allgather #0 (", [&](MpiCommunicator& c) {
    c.allgather(send.data(), recv.data(), last_differs(c, 4, 2), DType::Float32);
  });
}

TEST(CommErrors, MismatchedAllgathervCountsAreNamed) {
  std::vector<float> send(8, 1.0f), recv(8 * 16, 0.0f);
  expect_mpi_mismatch_named("allgatherv #0 (", [&](MpiCommunicator& c) {
    // Same total everywhere, but the last rank thinks rank 0 sends 3 and rank 1 sends 1.
    std::vector<int64_t> counts(size_t(c.size()), 2);
    if (c.rank() == c.size() - 1) counts[0] = 3, counts[1] = 1;
    c.allgatherv(send.data(), recv.data(), counts, DType::Float32);
  }, "with other per-rank counts");
}

TEST(CommErrors, MismatchedChunkedMpiAllreduceIsNamed) {
  std::vector<float> v(5000, 1.0f);
  expect_mpi_mismatch_named("allreduce #0 (", [&](MpiCommunicator& c) {
    c.allreduce(v.data(), v.data(), last_differs(c, 4000, 7), DType::Float32, ReduceOp::Sum);
  }, "", UserBufferPath::ChunkedMpi);
}

TEST(CommErrors, MismatchedMpiReduceScatterIsNamed) {
  std::vector<float> send(64 * 16, 1.0f), recv(64, 0.0f);
  expect_mpi_mismatch_named("reduce_scatter #0 (", [&](MpiCommunicator& c) {
    c.reduce_scatter(send.data(), recv.data(), 32, DType::Float32,
                     c.rank() == c.size() - 1 ? ReduceOp::Max : ReduceOp::Sum);
  }, "max", UserBufferPath::ChunkedMpi);
}

TEST(CommErrors, VerifiedMpiCallsStillComputeAndCanBeTurnedOff) {
  for (bool verify : {true, false}) {
    CommOptions o;
    o.verify_mpi_calls = verify;
    o.user_path = UserBufferPath::ChunkedMpi;
    MpiCommunicator c(MPI_COMM_WORLD, o);
    std::vector<int32_t> b(10, c.rank() == 1 ? 42 : -1);
    c.broadcast(b.data(), 10, DType::Int32, 1 % c.size());
    EXPECT_EQ(b[9], c.size() > 1 ? 42 : -1) << "verify=" << verify;
    std::vector<float> v(3000, float(c.rank() + 1));
    Work w1 = c.iallreduce(v.data(), v.data(), 3000, DType::Float32, ReduceOp::Sum);
    std::vector<int32_t> g(size_t(c.size()), 0);
    const int32_t mine = c.rank() * 10;
    Work w2 = c.iallgather(&mine, g.data(), 1, DType::Int32);  // queued behind the allreduce
    w2.wait();
    w1.wait();
    EXPECT_FLOAT_EQ(v[2999], float(c.size() * (c.size() + 1) / 2)) << "verify=" << verify;
    for (int r = 0; r < c.size(); ++r) EXPECT_EQ(g[size_t(r)], r * 10) << "verify=" << verify;
  }
}

TEST(CommErrors, AllocateSharedSizesMustAgree) {
  MpiCommunicator comm(MPI_COMM_WORLD, {});
  EXPECT_THROW_WITH(comm.allocate_shared(4096 + size_t(comm.rank())), ArgumentError, "different sizes");
}

}  // namespace
}  // namespace mpitrain::test
