#include "reduce_kernels.hpp"

#include <algorithm>

#include "mpitrain/errors.hpp"

namespace mpitrain::detail {

// Bit-exact IEEE half <-> float (the branch-free scheme used by FP16/c10: scale through the
// float exponent range so the FPU does the rounding).
float half_to_float(uint16_t h) {
  const uint32_t w = uint32_t(h) << 16;
  const uint32_t sign = w & 0x80000000u;
  const uint32_t two_w = w + w;
  const float normalized = bits_float((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
  const float denormalized = bits_float((two_w >> 17) | (126u << 23)) - 0.5f;
  const uint32_t r = sign | (two_w < (1u << 27) ? float_bits(denormalized) : float_bits(normalized));
  return bits_float(r);
}

uint16_t float_to_half(float f) {
  float base = (std::abs(f) * 0x1.0p+112f) * 0x1.0p-110f;
  const uint32_t w = float_bits(f);
  const uint32_t shl1_w = w + w;
  const uint32_t sign = w & 0x80000000u;
  uint32_t bias = shl1_w & 0xFF000000u;
  if (bias < 0x71000000u) bias = 0x71000000u;
  base = bits_float((bias >> 1) + 0x07800000u) + base;
  const uint32_t bits = float_bits(base);
  const uint32_t exp_bits = (bits >> 13) & 0x00007C00u;
  const uint32_t mantissa_bits = bits & 0x00000FFFu;
  return uint16_t((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : exp_bits + mantissa_bits));
}

void copy_cached(void* dst, const void* src, size_t bytes) {
  auto* d = static_cast<char*>(dst);
  auto* s = static_cast<const char*>(src);
  size_t i = 0;
  for (; i + 64 <= bytes; i += 64) __builtin_memcpy(d + i, s + i, 64);  // inlined vector moves
  if (i < bytes) std::memcpy(d + i, s + i, bytes - i);
}

DType accum_dtype(DType t) {
  return (t == DType::BFloat16 || t == DType::Float16) ? DType::Float32 : t;
}

namespace {

struct Bf16 { uint16_t v; };
struct Fp16 { uint16_t v; };

template <class T> struct Traits { using Acc = T; static Acc load(T x) { return x; } static T store(Acc a) { return a; } };
template <> struct Traits<Bf16> {
  using Acc = float;
  static float load(Bf16 x) { return bf16_to_float(x.v); }
  static Bf16 store(float a) { return {float_to_bf16(a)}; }
};
template <> struct Traits<Fp16> {
  using Acc = float;
  static float load(Fp16 x) { return half_to_float(x.v); }
  static Fp16 store(float a) { return {float_to_half(a)}; }
};

struct OpSum { template <class A> static A apply(A a, A b) { return a + b; } };
struct OpProd { template <class A> static A apply(A a, A b) { return a * b; } };
struct OpMin { template <class A> static A apply(A a, A b) { return b < a ? b : a; } };
struct OpMax { template <class A> static A apply(A a, A b) { return a < b ? b : a; } };

constexpr size_t kBlock = 512;  // elements per block: the accumulator stays in L1

template <class T, class Op>
inline void accumulate_block(const void* const* srcs, int nsrc, size_t off, size_t m,
                             typename Traits<T>::Acc* acc) {
  using TR = Traits<T>;
  const T* s0 = static_cast<const T*>(srcs[0]) + off;
  if (nsrc == 1) {
    for (size_t i = 0; i < m; ++i) acc[i] = TR::load(s0[i]);
    return;
  }
  const T* s1 = static_cast<const T*>(srcs[1]) + off;
  for (size_t i = 0; i < m; ++i) acc[i] = Op::apply(TR::load(s0[i]), TR::load(s1[i]));
  for (int j = 2; j < nsrc; ++j) {
    const T* sj = static_cast<const T*>(srcs[j]) + off;
    for (size_t i = 0; i < m; ++i) acc[i] = Op::apply(acc[i], TR::load(sj[i]));
  }
}

template <class T, class Op>
void fused(const void* const* srcs, int nsrc, void* const* dsts, int ndst, size_t count, int divisor, bool avg) {
  using TR = Traits<T>;
  using Acc = typename TR::Acc;
  alignas(64) Acc acc[kBlock];
  for (size_t off = 0; off < count; off += kBlock) {
    const size_t m = std::min(kBlock, count - off);
    accumulate_block<T, Op>(srcs, nsrc, off, m, acc);
    if (avg)
      for (size_t i = 0; i < m; ++i) acc[i] = acc[i] / Acc(divisor);
    for (int d = 0; d < ndst; ++d) {
      T* out = static_cast<T*>(dsts[d]) + off;
      for (size_t i = 0; i < m; ++i) out[i] = TR::store(acc[i]);
    }
  }
}

template <class T, class Op>
void to_accum(const void* const* srcs, int nsrc, void* accv, size_t count) {
  using Acc = typename Traits<T>::Acc;
  Acc* acc = static_cast<Acc*>(accv);
  for (size_t off = 0; off < count; off += kBlock)
    accumulate_block<T, Op>(srcs, nsrc, off, std::min(kBlock, count - off), acc + off);
}

template <class T>
void from_accum(const void* accv, void* const* dsts, int ndst, size_t count, int divisor, bool avg) {
  using TR = Traits<T>;
  using Acc = typename TR::Acc;
  const Acc* acc = static_cast<const Acc*>(accv);
  for (int d = 0; d < ndst; ++d) {
    T* out = static_cast<T*>(dsts[d]);
    if (avg)
      for (size_t i = 0; i < count; ++i) out[i] = TR::store(acc[i] / Acc(divisor));
    else
      for (size_t i = 0; i < count; ++i) out[i] = TR::store(acc[i]);
  }
}

template <class F>
void dispatch_type(DType t, F&& f) {
  switch (t) {
    case DType::Float32: return f(float{});
    case DType::Float64: return f(double{});
    case DType::BFloat16: return f(Bf16{});
    case DType::Float16: return f(Fp16{});
    case DType::Int32: return f(int32_t{});
    case DType::Int64: return f(int64_t{});
    case DType::UInt8: break;  // never reduced (check_reduction_supported)
  }
  throw ArgumentError("reduce: unknown dtype");
}

template <class F>
void dispatch_op(ReduceOp op, F&& f) {
  switch (op) {
    case ReduceOp::Sum:
    case ReduceOp::Avg: return f(OpSum{});
    case ReduceOp::Prod: return f(OpProd{});
    case ReduceOp::Min: return f(OpMin{});
    case ReduceOp::Max: return f(OpMax{});
  }
  throw ArgumentError("reduce: unknown op");
}

}  // namespace

void reduce_to_accum(DType t, ReduceOp op, const void* const* srcs, int nsrc, void* acc, size_t count) {
  dispatch_type(t, [&](auto tv) {
    dispatch_op(op, [&](auto ov) { to_accum<decltype(tv), decltype(ov)>(srcs, nsrc, acc, count); });
  });
}

void store_from_accum(DType t, ReduceOp op, const void* acc, void* const* dsts, int ndst, size_t count,
                      int divisor) {
  dispatch_type(t, [&](auto tv) { from_accum<decltype(tv)>(acc, dsts, ndst, count, divisor, op == ReduceOp::Avg); });
}

void reduce_fused(DType t, ReduceOp op, const void* const* srcs, int nsrc, void* const* dsts, int ndst,
                  size_t count, int divisor) {
  dispatch_type(t, [&](auto tv) {
    dispatch_op(op, [&](auto ov) {
      fused<decltype(tv), decltype(ov)>(srcs, nsrc, dsts, ndst, count, divisor, op == ReduceOp::Avg);
    });
  });
}

}  // namespace mpitrain::detail
