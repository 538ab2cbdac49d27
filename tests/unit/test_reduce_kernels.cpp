// Reduction kernels and dtype helpers, without MPI: conversions must be bit-exact with c10's,
// and fused reductions must equal a straightforward reference.
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "mpitrain/comm/types.hpp"
#include "mpitrain/errors.hpp"
#include "reduce_kernels.hpp"

namespace mpitrain::detail {
namespace {

TEST(HalfConversion, EveryHalfBitPatternMatchesC10) {
  for (uint32_t b = 0; b < 65536; ++b) {
    const float ours = half_to_float(uint16_t(b));
    const float ref = float(c10::Half(uint16_t(b), c10::Half::from_bits()));
    if (std::isnan(ref)) {
      EXPECT_TRUE(std::isnan(ours)) << b;
      continue;
    }
    ASSERT_EQ(float_bits(ours), float_bits(ref)) << "half bits " << b;
    ASSERT_EQ(float_to_half(ours), uint16_t(b)) << "round trip of half bits " << b;
    ASSERT_EQ(bf16_to_float(uint16_t(b)), float(c10::BFloat16(uint16_t(b), c10::BFloat16::from_bits())));
  }
}

TEST(HalfConversion, RoundingMatchesC10OnRandomFloats) {
  std::mt19937 gen(7);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 1000000; ++i) {
    const float f = bits_float(bits(gen));
    if (std::isnan(f)) continue;
    ASSERT_EQ(float_to_half(f), c10::Half(f).x) << f;
    ASSERT_EQ(float_to_bf16(f), c10::BFloat16(f).x) << f;
  }
}

TEST(ReduceKernels, FusedEqualsReferenceForEveryOp) {
  const int n = 3;
  const size_t count = 1500;  // spans several 512-element blocks
  std::vector<std::vector<double>> src(n, std::vector<double>(count));
  for (int j = 0; j < n; ++j)
    for (size_t i = 0; i < count; ++i) src[size_t(j)][i] = double((i * 7 + size_t(j) * 13) % 11) - 5.0;
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Avg, ReduceOp::Min, ReduceOp::Max, ReduceOp::Prod}) {
    std::vector<double> a(count), b(count);
    const void* srcs[3] = {src[0].data(), src[1].data(), src[2].data()};
    void* dsts[2] = {a.data(), b.data()};
    reduce_fused(DType::Float64, op, srcs, n, dsts, 2, count, n);
    for (size_t i = 0; i < count; ++i) {
      double w = src[0][i];
      for (int j = 1; j < n; ++j) {
        const double v = src[size_t(j)][i];
        w = op == ReduceOp::Prod ? w * v : op == ReduceOp::Min ? std::min(w, v) : op == ReduceOp::Max ? std::max(w, v) : w + v;
      }
      if (op == ReduceOp::Avg) w /= n;
      ASSERT_EQ(a[i], w) << reduce_op_name(op) << " i=" << i;
      ASSERT_EQ(b[i], w) << reduce_op_name(op) << " i=" << i;
    }
  }
}

TEST(ReduceKernels, ZeroCopyAliasingDestinationIsSafe) {
  std::vector<float> x(2000, 1.5f), y(2000, 2.5f);
  const void* srcs[2] = {x.data(), y.data()};
  void* dsts[2] = {x.data(), y.data()};  // results overwrite the sources, as in the shared window
  reduce_fused(DType::Float32, ReduceOp::Sum, srcs, 2, dsts, 2, x.size(), 2);
  for (size_t i = 0; i < x.size(); ++i) ASSERT_TRUE(x[i] == 4.0f && y[i] == 4.0f) << i;
}

TEST(ReduceKernels, AccumulateThenStoreRoundsOnce) {
  // bf16: 256 + 1 + 1 + 1 = 259 -> rounds to 260 once; pairwise bf16 adds would give 256.
  std::vector<uint16_t> s0 = {float_to_bf16(256.f)}, s1 = {float_to_bf16(1.f)};
  const void* srcs[4] = {s0.data(), s1.data(), s1.data(), s1.data()};
  float acc = 0;
  reduce_to_accum(DType::BFloat16, ReduceOp::Sum, srcs, 4, &acc, 1);
  EXPECT_EQ(acc, 259.f);
  uint16_t out = 0;
  void* dst = &out;
  store_from_accum(DType::BFloat16, ReduceOp::Sum, &acc, &dst, 1, 1, 4);
  EXPECT_EQ(bf16_to_float(out), 260.f);
}

TEST(Types, NamesAndSupport) {
  EXPECT_EQ(dtype_size(DType::BFloat16), 2u);
  EXPECT_EQ(parse_dtype("float16"), DType::Float16);
  EXPECT_EQ(parse_reduce_op("prod"), ReduceOp::Prod);
  EXPECT_THROW(parse_reduce_op("mean"), ArgumentError);
  EXPECT_THROW(check_reduction_supported(DType::Int64, ReduceOp::Avg), ArgumentError);
  EXPECT_NO_THROW(check_reduction_supported(DType::Float16, ReduceOp::Avg));
}

}  // namespace
}  // namespace mpitrain::detail
