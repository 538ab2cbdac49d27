// make_communicator (launch/make_communicator.hpp): MPI without use_gpu; with use_gpu on a machine
// without a CUDA device (or a build without NCCL), ConfigError on every rank in one clear line,
// no hang, and MPI still usable. Run alone (singleton) and under mpirun -n 2.
#include <gtest/gtest.h>

#include "mpitrain/launch/make_communicator.hpp"

namespace mpitrain {
namespace {

using namespace std::chrono_literals;

CommOptions with_deadline() {
  CommOptions o;
  o.timeout = 60s;
  return o;
}

TEST(MakeCommunicator, WithoutUseGpuItIsTheMpiBackend) {
  Environment env = detect_environment(MPI_COMM_WORLD, Role::Worker);
  auto comm = make_communicator(MPI_COMM_WORLD, env, with_deadline());
  EXPECT_STREQ(comm->backend(), "mpi");
  EXPECT_EQ(env.device, "cpu");
  int32_t one = 1;
  comm->allreduce(&one, &one, 1, DType::Int32, ReduceOp::Sum);
  EXPECT_EQ(one, env.world_size);
}

TEST(MakeCommunicator, UseGpuWithoutADeviceIsAConfigErrorOnEveryRank) {
  Environment env = detect_environment(MPI_COMM_WORLD, Role::Worker, true);
  ASSERT_TRUE(env.use_gpu);
  std::string msg = "<no exception>";
  try {
    auto comm = make_communicator(MPI_COMM_WORLD, env, with_deadline());
    EXPECT_STREQ(comm->backend(), "nccl");  // a GPU machine: the device path came up
    EXPECT_EQ(env.device.rfind("cuda:", 0), 0u) << env.device;
    GTEST_SKIP() << "a CUDA device is visible here; this test covers machines without one";
  } catch (const ConfigError& e) {
    msg = e.what();
  }
#ifdef MPITRAIN_WITH_NCCL
  // No rank has a device here, so the lowest one, rank 0, is named.
  EXPECT_EQ(msg.rfind("use_gpu requested, but rank 0 (host ", 0), 0u) << msg;
  EXPECT_NE(msg.find("sees no CUDA device (cudaGetDeviceCount: "), std::string::npos) << msg;
  EXPECT_NE(msg.find("; run without --use-gpu, or on nodes with GPUs"), std::string::npos) << msg;
#else
  EXPECT_NE(msg.find("has no NCCL backend"), std::string::npos) << msg;
#endif
  EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
  EXPECT_EQ(env.device, "cpu");
  // Every rank failed at the same point: no collective is left half-done.
  int one = 1, sum = 0;
  MPI_Allreduce(&one, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  EXPECT_EQ(sum, env.world_size);
}

}  // namespace
}  // namespace mpitrain
