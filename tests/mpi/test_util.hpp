// Reference data for collective tests: every rank can compute every other rank's input, so each
// rank checks the full result on its own.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "mpitrain/comm/types.hpp"
#include "reduce_kernels.hpp"

namespace mpitrain::test {

/// Small integers (exact in every dtype, also summed over 4 ranks or multiplied over 4 ranks):
/// sum/avg/min/max in [-8, 8], prod in {-2, -1, 1, 2}.
inline double value(int rank, size_t i, ReduceOp op) {
  const uint64_t h = (uint64_t(i) * 2654435761u + uint64_t(rank) * 40503u + 7) % 1000003u;
  if (op == ReduceOp::Prod) {
    static const double v[4] = {-2, -1, 1, 2};
    return v[h % 4];
  }
  return double(int64_t(h % 17) - 8);
}

inline double reduce_ref(int world, size_t i, ReduceOp op) {
  double acc = value(0, i, op);
  for (int r = 1; r < world; ++r) {
    const double v = value(r, i, op);
    switch (op) {
      case ReduceOp::Sum: case ReduceOp::Avg: acc += v; break;
      case ReduceOp::Prod: acc *= v; break;
      case ReduceOp::Min: acc = std::min(acc, v); break;
      case ReduceOp::Max: acc = std::max(acc, v); break;
    }
  }
  return op == ReduceOp::Avg ? acc / world : acc;
}

/// Stores `v` as dtype `t` at element i of `buf`.
inline void put(void* buf, DType t, size_t i, double v) {
  switch (t) {
    case DType::Float32: static_cast<float*>(buf)[i] = float(v); break;
    case DType::Float64: static_cast<double*>(buf)[i] = v; break;
    case DType::BFloat16: static_cast<uint16_t*>(buf)[i] = detail::float_to_bf16(float(v)); break;
    case DType::Float16: static_cast<uint16_t*>(buf)[i] = detail::float_to_half(float(v)); break;
    case DType::Int32: static_cast<int32_t*>(buf)[i] = int32_t(v); break;
    case DType::Int64: static_cast<int64_t*>(buf)[i] = int64_t(v); break;
  }
}

inline double get(const void* buf, DType t, size_t i) {
  switch (t) {
    case DType::Float32: return static_cast<const float*>(buf)[i];
    case DType::Float64: return static_cast<const double*>(buf)[i];
    case DType::BFloat16: return detail::bf16_to_float(static_cast<const uint16_t*>(buf)[i]);
    case DType::Float16: return detail::half_to_float(static_cast<const uint16_t*>(buf)[i]);
    case DType::Int32: return static_cast<const int32_t*>(buf)[i];
    case DType::Int64: return double(static_cast<const int64_t*>(buf)[i]);
  }
  return NAN;
}

inline std::vector<char> filled(DType t, size_t n, int rank, ReduceOp op) {
  std::vector<char> b(n * dtype_size(t) + 1);  // +1: never a zero-size vector's null data()
  for (size_t i = 0; i < n; ++i) put(b.data(), t, i, value(rank, i, op));
  return b;
}

/// Index of the first element of `buf` that differs from the reference, or -1.
inline int64_t first_mismatch(const void* buf, DType t, size_t n, int world, ReduceOp op) {
  for (size_t i = 0; i < n; ++i) {
    double want = reduce_ref(world, i, op);
    if (op == ReduceOp::Avg) {  // exact in fp32/fp64; bf16/fp16 round the quotient once
      std::vector<char> tmp(8);
      put(tmp.data(), t, 0, want);
      want = get(tmp.data(), t, 0);
    }
    if (get(buf, t, i) != want) return int64_t(i);
  }
  return -1;
}

inline const DType kAllTypes[] = {DType::Float32, DType::Float64, DType::BFloat16,
                                  DType::Float16, DType::Int32,   DType::Int64};
inline const ReduceOp kAllOps[] = {ReduceOp::Sum, ReduceOp::Avg, ReduceOp::Min, ReduceOp::Max, ReduceOp::Prod};

}  // namespace mpitrain::test
