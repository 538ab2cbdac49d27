// at::Tensor conveniences: shapes, dtypes and the errors for tensors that cannot be reduced.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "mpitrain/comm/mpi_communicator.hpp"
#include "mpitrain/comm/tensor_collectives.hpp"

namespace mpitrain {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "<no exception>";
}

TEST(TensorCollectives, AllreduceMatchesTorchSum) {
  MpiCommunicator comm(MPI_COMM_WORLD, {});
  const int n = comm.size();
  for (auto dtype : {torch::kFloat, torch::kDouble, torch::kBFloat16, torch::kHalf}) {
    torch::manual_seed(1234);  // same stream on every rank: rank r takes slice r
    auto all = torch::randn({n, 37, 5}).to(dtype);
    auto mine = all[comm.rank()].clone();
    allreduce(comm, mine);
    auto want = all.to(torch::kFloat).sum(0).to(dtype).to(torch::kFloat);
    EXPECT_TRUE(torch::allclose(mine.to(torch::kFloat), want, 1e-2, 1e-2)) << c10::toString(dtype);
    if (dtype == torch::kFloat || dtype == torch::kDouble)
      EXPECT_LT((mine.to(torch::kDouble) - all.to(torch::kDouble).sum(0)).abs().max().item<double>(), 1e-5);
  }
  auto ints = torch::full({10}, comm.rank() + 1, torch::kLong);
  auto out = torch::empty_like(ints);
  allreduce(comm, ints, out, ReduceOp::Max);
  EXPECT_EQ(out.max().item<int64_t>(), n);
  EXPECT_EQ(ints.max().item<int64_t>(), comm.rank() + 1) << "out-of-place must not touch the input";
}

TEST(TensorCollectives, GatherScatterShapes) {
  MpiCommunicator comm(MPI_COMM_WORLD, {});
  const int n = comm.size(), r = comm.rank();
  auto t = torch::full({2, 3}, float(r));
  auto g = allgather(comm, t);
  ASSERT_EQ(g.sizes(), (std::vector<int64_t>{2 * n, 3}));
  for (int k = 0; k < n; ++k) EXPECT_EQ(g[2 * k][0].item<float>(), float(k));

  auto v = torch::full({r + 1, 4}, int32_t(r), torch::kInt);  // dim 0 differs by rank
  auto gv = allgather_variable(comm, v);
  ASSERT_EQ(gv.size(0), int64_t(n) * (n + 1) / 2);
  ASSERT_EQ(gv.size(1), 4);
  EXPECT_EQ(gv[gv.size(0) - 1][0].item<int32_t>(), n - 1);

  auto rs = reduce_scatter(comm, torch::ones({n * 3, 2}), ReduceOp::Sum);
  ASSERT_EQ(rs.sizes(), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(rs.sum().item<float>(), float(6 * n));

  auto b = torch::full({5}, float(r));
  broadcast(comm, b, n - 1);
  EXPECT_EQ(b.sum().item<float>(), float(5 * (n - 1)));
}

TEST(TensorCollectives, BadTensorsAreRejectedWithReasons) {
  MpiCommunicator comm(MPI_COMM_WORLD, {});
  auto f = torch::ones({4});
  auto d = torch::ones({4}, torch::kDouble);
  auto msg = error_of([&] { allreduce(comm, f, d); });
  EXPECT_NE(msg.find("mismatched tensor dtypes: input is Float, output is Double"), std::string::npos) << msg;
  auto u8 = torch::ones({4}, torch::kUInt8);
  msg = error_of([&] { allreduce(comm, u8); });
  EXPECT_NE(msg.find("unsupported tensor dtype Byte"), std::string::npos) << msg;
  auto nc = torch::ones({4, 4}).t();
  msg = error_of([&] { allreduce(comm, nc); });
  EXPECT_NE(msg.find("contiguous"), std::string::npos) << msg;
  auto i = torch::ones({4}, torch::kInt);
  msg = error_of([&] { allreduce(comm, i, ReduceOp::Avg); });
  EXPECT_NE(msg.find("avg is not supported for int32"), std::string::npos) << msg;
  auto odd = torch::ones({comm.size() * 2 + 1});
  msg = error_of([&] { reduce_scatter(comm, odd); });
  EXPECT_NE(msg.find("must be divisible by the world size"), std::string::npos) << msg;
  // The communicator is still usable.
  allreduce(comm, f);
  EXPECT_EQ(f[0].item<float>(), float(comm.size()));
}

}  // namespace
}  // namespace mpitrain
