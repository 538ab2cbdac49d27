// Element-wise reduction kernels shared by every CPU path. bf16/fp16 are accumulated in fp32
// across all operands and rounded once, so an N-way sum is as exact as the fp32 sum.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "mpitrain/comm/types.hpp"

namespace mpitrain::detail {

inline uint32_t float_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline float bits_float(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

inline float bf16_to_float(uint16_t h) { return bits_float(uint32_t(h) << 16); }
inline uint16_t float_to_bf16(float f) {  // round to nearest even; NaN stays a quiet NaN
  uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
float half_to_float(uint16_t h);
uint16_t float_to_half(float f);  // IEEE binary16, round to nearest even

/// Plain cached copy. glibc's memcpy switches to non-temporal stores above a threshold derived
/// from the cache sizes the VM reports; staged data is read again right away, so it must stay
/// in cache.
void copy_cached(void* dst, const void* src, size_t bytes);

/// Type in which a reduction of `t` accumulates: float32 for bf16/fp16, else `t` itself.
DType accum_dtype(DType t);

/// acc[i] = op(srcs[0][i], ..., srcs[n-1][i]) in that order, in the accumulation type.
void reduce_to_accum(DType t, ReduceOp op, const void* const* srcs, int nsrc, void* acc, size_t count);
/// dsts[d][i] = acc[i] (divided by `divisor` for Avg), converted back to `t`.
void store_from_accum(DType t, ReduceOp op, const void* acc, void* const* dsts, int ndst, size_t count,
                      int divisor);
/// Both in one pass: each result is written to every dst. A dst may be one of the srcs (the
/// zero-copy case): element i is read from every src before it is written.
void reduce_fused(DType t, ReduceOp op, const void* const* srcs, int nsrc, void* const* dsts, int ndst,
                  size_t count, int divisor);

}  // namespace mpitrain::detail
