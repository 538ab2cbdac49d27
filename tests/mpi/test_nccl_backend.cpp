// The NCCL backend is compiled and linked here, but this machine has no GPU: asking for it must
// fail on every rank with a message that says why, never hang.
#include <gtest/gtest.h>

#include "mpitrain/comm/nccl_communicator.hpp"

namespace mpitrain {
namespace {

TEST(NcclBackend, WithoutADeviceFailsClearlyOnEveryRank) {
  int devices = 0;
  std::string msg = "<no exception>";
  try {
    NcclCommunicator comm(MPI_COMM_WORLD, {});
    devices = 1;  // a GPU machine: the backend came up
    EXPECT_STREQ(comm.backend(), "nccl");
  } catch (const CommError& e) {
    msg = e.what();
  }
  if (devices) GTEST_SKIP() << "a CUDA device is visible here; this test covers machines without one";
  EXPECT_NE(msg.find("NCCL backend requested but"), std::string::npos) << msg;
  EXPECT_NE(msg.find("no CUDA device"), std::string::npos) << msg;
  // MPI still works afterwards: the failed setup left no collective half-done.
  int one = 1, sum = 0;
  MPI_Allreduce(&one, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  int size = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  EXPECT_EQ(sum, size);
}

}  // namespace
}  // namespace mpitrain
