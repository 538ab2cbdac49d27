// Failure behaviour: bad arguments raise ArgumentError naming the problem; a rank that skips a
// collective turns into CommError on its peers within the deadline (never a hang); ranks that
// call different collectives are told so.
#include <gtest/gtest.h>

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
      [&](MpiCommunicator& c) { c.broadcast(v.data(), 16, DType::Int32, c.size() - 1); });
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

TEST(CommErrors, AllocateSharedSizesMustAgree) {
  MpiCommunicator comm(MPI_COMM_WORLD, {});
  EXPECT_THROW_WITH(comm.allocate_shared(4096 + size_t(comm.rank())), ArgumentError, "different sizes");
}

}  // namespace
}  // namespace mpitrain::test
