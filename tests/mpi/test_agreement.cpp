// Typed cross-rank agreement (comm/agreement.hpp): bytes and strings travel exactly (NULs, empty,
// a length per rank), and a failure on some ranks arrives as the same exception family on every
// rank, from the lowest failing rank. Run under mpirun -n 2 and -n 4.
#include <gtest/gtest.h>

#include <stdexcept>

#include "mpitrain/comm/agreement.hpp"
#include "mpitrain/comm/mpi_communicator.hpp"

namespace mpitrain::test {
namespace {

using namespace std::chrono_literals;

CommOptions with_deadline() {
  CommOptions o;
  o.timeout = 60s;
  return o;
}

// Rank r's bytes: r * 3 of them (rank 0's empty), with NULs inside.
std::string bytes_of(int rank) {
  std::string s;
  for (int i = 0; i < rank * 3; ++i) s.push_back(i % 3 == 1 ? '\0' : char('a' + rank));
  return s;
}

template <class E>
std::exception_ptr raised(const std::string& message) {
  try {
    throw E(message);
  } catch (...) {
    return std::current_exception();
  }
}

// The exception object behind `p` (libstdc++ rethrows the object itself, not a copy).
const std::exception* object_of(const std::exception_ptr& p) {
  try {
    std::rethrow_exception(p);
  } catch (const std::exception& e) {
    return &e;
  }
  return nullptr;
}

TEST(BroadcastBytes, StringWithEmbeddedNulsArrivesWhole) {
  MpiCommunicator comm(MPI_COMM_WORLD, with_deadline());
  const std::string sent("one\0two\0\0three", 15);
  const int root = comm.size() - 1;
  std::string s = comm.rank() == root ? sent : std::string("stale");
  broadcast_bytes(comm, s, root);
  EXPECT_EQ(s.size(), 15u);
  EXPECT_EQ(s, sent);
}

TEST(BroadcastBytes, EmptyStringFromANonZeroRoot) {
  MpiCommunicator comm(MPI_COMM_WORLD, with_deadline());
  std::string s = comm.rank() == 1 ? std::string() : std::string("not empty on rank ") + std::to_string(comm.rank());
  broadcast_bytes(comm, s, 1);
  EXPECT_EQ(s, "");
}

TEST(AllgatherBytes, ADifferentLengthPerRankIncludingAnEmptyOne) {
  MpiCommunicator comm(MPI_COMM_WORLD, with_deadline());
  const std::vector<std::string> all = allgather_bytes(comm, bytes_of(comm.rank()));
  ASSERT_EQ(int(all.size()), comm.size());
  EXPECT_EQ(all[0], "");
  for (int r = 0; r < comm.size(); ++r) EXPECT_EQ(all[size_t(r)], bytes_of(r)) << "rank " << r << "'s bytes";
}

// `E` thrown on rank 1 only: every rank catches an E (not just an Error) of kind `kind`; rank 1
// its own object, the others the message with " (raised on rank 1)".
template <class E>
void expect_failure_of_rank1_everywhere(ErrorKind kind) {
  MpiCommunicator comm(MPI_COMM_WORLD, with_deadline());
  const std::string text = std::string("bad ") + error_kind_name(kind) + " on rank 1";
  const std::exception_ptr mine = comm.rank() == 1 ? raised<E>(text) : nullptr;
  try {
    agree_on_failure(comm, mine);
    ADD_FAILURE() << "no exception on rank " << comm.rank();
  } catch (const E& e) {
    EXPECT_EQ(error_kind_of(e), kind);
    if (comm.rank() == 1) {
      EXPECT_EQ(&e, object_of(mine)) << "rank 1 should get its own exception object back";
      EXPECT_EQ(std::string(e.what()), text);
    } else {
      EXPECT_EQ(std::string(e.what()), text + " (raised on rank 1)");
    }
  } catch (const std::exception& e) {
    ADD_FAILURE() << "rank " << comm.rank() << " got another family (" << error_kind_name(error_kind_of(e))
                  << "): " << e.what();
  }
}

TEST(AgreeOnFailure, ArgumentErrorOnRankOneIsAnArgumentErrorOnEveryRank) {
  expect_failure_of_rank1_everywhere<ArgumentError>(ErrorKind::Argument);
}

TEST(AgreeOnFailure, CheckpointErrorOnRankOneIsACheckpointErrorOnEveryRank) {
  expect_failure_of_rank1_everywhere<CheckpointError>(ErrorKind::Checkpoint);
}

TEST(AgreeOnFailure, ConfigErrorOnRankOneIsAConfigErrorOnEveryRank) {
  expect_failure_of_rank1_everywhere<ConfigError>(ErrorKind::Config);
}

TEST(AgreeOnFailure, RankOneGetsItsOwnExceptionPointerBack) {
  MpiCommunicator comm(MPI_COMM_WORLD, with_deadline());
  const std::exception_ptr mine = comm.rank() == 1 ? raised<std::runtime_error>("plain") : nullptr;
  const std::exception_ptr agreed = agreed_failure(comm, mine);
  ASSERT_TRUE(agreed);
  if (comm.rank() == 1) EXPECT_EQ(agreed, mine);
  else EXPECT_EQ(error_kind_of(*object_of(agreed)), ErrorKind::Error) << "a foreign exception arrives as Error";
}

TEST(AgreeOnFailure, NoFailureNoThrow) {
  MpiCommunicator comm(MPI_COMM_WORLD, with_deadline());
  EXPECT_NO_THROW(agree_on_failure(comm, nullptr));
  EXPECT_FALSE(agreed_failure(comm, nullptr));
}

TEST(AgreeOnFailure, TheLowestFailingRankWins) {
  MpiCommunicator comm(MPI_COMM_WORLD, with_deadline());
  if (comm.size() < 3) GTEST_SKIP() << "needs ranks 1 and 2 (run with -n 4)";
  std::exception_ptr mine;
  if (comm.rank() == 1) mine = raised<ConfigError>("from rank 1");
  if (comm.rank() == 2) mine = raised<CheckpointError>("from rank 2");
  try {
    agree_on_failure(comm, mine);
    ADD_FAILURE() << "no exception on rank " << comm.rank();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), comm.rank() == 1 ? "from rank 1" : "from rank 1 (raised on rank 1)");
  } catch (const std::exception& e) {
    ADD_FAILURE() << "rank " << comm.rank() << " got " << e.what();
  }
}

TEST(BytesDType, UInt8AllreduceIsRefusedAndTheCommunicatorStaysUsable) {
  MpiCommunicator comm(MPI_COMM_WORLD, with_deadline());
  uint8_t b[4] = {1, 2, 3, 4};
  EXPECT_THROW(comm.allreduce(b, b, 4, DType::UInt8, ReduceOp::Sum), ArgumentError);
  EXPECT_THROW(comm.allreduce(b, b, 4, DType::UInt8, ReduceOp::Max), ArgumentError);
  int32_t one = 1;
  comm.allreduce(&one, &one, 1, DType::Int32, ReduceOp::Sum);
  EXPECT_EQ(one, comm.size());
  std::string s = comm.rank() == 0 ? "still works" : "";
  broadcast_bytes(comm, s, 0);
  EXPECT_EQ(s, "still works");
}

TEST(AgreeOnFailure, TheOriginRankIsReadBackFromTheMessage) {
  std::string text;
  EXPECT_EQ(raised_on_rank("bad batch (raised on rank 12)", &text), 12);
  EXPECT_EQ(text, "bad batch");
  EXPECT_EQ(raised_on_rank("bad batch", &text), -1);
  EXPECT_EQ(text, "bad batch");
  EXPECT_EQ(raised_on_rank("odd (raised on rank x)", &text), -1);
  EXPECT_EQ(text, "odd (raised on rank x)");
}

}  // namespace
}  // namespace mpitrain::test
