#include "mpitrain/comm/tensor_collectives.hpp"

#include <ATen/ATen.h>
#include <c10/util/accumulate.h>

namespace mpitrain {

namespace {
void require(bool ok, const std::string& msg) {
  if (!ok) throw ArgumentError(msg);
}
void check_tensor(const char* what, const at::Tensor& t) {
  require(t.defined(), std::string(what) + ": undefined tensor");
  require(t.is_contiguous(), std::string(what) + ": tensor must be contiguous (call .contiguous())");
  to_dtype(t.scalar_type());
}
std::vector<int64_t> shape_with_dim0(const at::Tensor& t, int64_t d0) {
  std::vector<int64_t> s(t.sizes().begin(), t.sizes().end());
  if (s.empty()) s.push_back(d0); else s[0] = d0;
  return s;
}
}  // namespace

DType to_dtype(c10::ScalarType t) {
  switch (t) {
    case at::kFloat: return DType::Float32;
    case at::kDouble: return DType::Float64;
    case at::kBFloat16: return DType::BFloat16;
    case at::kHalf: return DType::Float16;
    case at::kInt: return DType::Int32;
    case at::kLong: return DType::Int64;
    default:
      throw ArgumentError(std::string("unsupported tensor dtype ") + c10::toString(t) +
                          " (collectives take float32, float64, bfloat16, float16, int32 or int64; bytes go through broadcast_bytes / allgather_bytes)");
  }
}

c10::ScalarType to_scalar_type(DType t) {
  switch (t) {
    case DType::Float32: return at::kFloat;
    case DType::Float64: return at::kDouble;
    case DType::BFloat16: return at::kBFloat16;
    case DType::Float16: return at::kHalf;
    case DType::Int32: return at::kInt;
    case DType::Int64: return at::kLong;
    case DType::UInt8: return at::kByte;
  }
  throw ArgumentError("unknown dtype");
}

Work iallreduce(Communicator& comm, at::Tensor& t, ReduceOp op) {
  check_tensor("allreduce", t);
  return comm.iallreduce(t.data_ptr(), t.data_ptr(), t.numel(), to_dtype(t.scalar_type()), op);
}

void allreduce(Communicator& comm, at::Tensor& t, ReduceOp op) {
  check_tensor("allreduce", t);
  comm.allreduce(t.data_ptr(), t.data_ptr(), t.numel(), to_dtype(t.scalar_type()), op);
}

void allreduce(Communicator& comm, const at::Tensor& in, at::Tensor& out, ReduceOp op) {
  check_tensor("allreduce", in);
  check_tensor("allreduce", out);
  require(in.scalar_type() == out.scalar_type(), std::string("allreduce: mismatched tensor dtypes: input is ") +
                                                     c10::toString(in.scalar_type()) + ", output is " +
                                                     c10::toString(out.scalar_type()));
  require(in.numel() == out.numel(), "allreduce: input has " + std::to_string(in.numel()) + " elements, output " +
                                         std::to_string(out.numel()));
  require(in.device() == out.device(), "allreduce: input and output are on different devices");
  comm.allreduce(in.data_ptr(), out.data_ptr(), in.numel(), to_dtype(in.scalar_type()), op);
}

void broadcast(Communicator& comm, at::Tensor& t, int root) {
  check_tensor("broadcast", t);
  comm.broadcast(t.data_ptr(), t.numel(), to_dtype(t.scalar_type()), root);
}

at::Tensor allgather(Communicator& comm, const at::Tensor& t) {
  check_tensor("allgather", t);
  const int64_t d0 = t.dim() == 0 ? 1 : t.size(0);
  at::Tensor out = at::empty(shape_with_dim0(t, d0 * comm.size()), t.options());
  comm.allgather(t.data_ptr(), out.data_ptr(), t.numel(), to_dtype(t.scalar_type()));
  return out;
}

at::Tensor allgather_variable(Communicator& comm, const at::Tensor& t) {
  check_tensor("allgather_variable", t);
  require(t.dim() >= 1, "allgather_variable: tensor needs at least one dimension");
  // Exchange every rank's dim 0 and row size; rows must agree or the result has no shape.
  const int64_t row = c10::multiply_integers(t.sizes().slice(1));
  std::vector<int64_t> mine = {t.size(0), row}, all(size_t(2 * comm.size()));
  comm.allgather(mine.data(), all.data(), 2, DType::Int64);
  std::vector<int64_t> counts(size_t(comm.size()));
  int64_t rows = 0;
  for (int r = 0; r < comm.size(); ++r) {
    if (all[size_t(2 * r + 1)] != row)
      throw ArgumentError("allgather_variable: rank " + std::to_string(r) + " has rows of " +
                          std::to_string(all[size_t(2 * r + 1)]) + " elements, this rank " + std::to_string(row));
    counts[size_t(r)] = all[size_t(2 * r)] * row;
    rows += all[size_t(2 * r)];
  }
  at::Tensor out = at::empty(shape_with_dim0(t, rows), t.options());
  comm.allgatherv(t.data_ptr(), out.data_ptr(), counts, to_dtype(t.scalar_type()));
  return out;
}

at::Tensor reduce_scatter(Communicator& comm, const at::Tensor& t, ReduceOp op) {
  check_tensor("reduce_scatter", t);
  require(t.dim() >= 1 && t.size(0) % comm.size() == 0,
          "reduce_scatter: dimension 0 (" + std::to_string(t.dim() ? t.size(0) : 0) +
              ") must be divisible by the world size " + std::to_string(comm.size()));
  at::Tensor out = at::empty(shape_with_dim0(t, t.size(0) / comm.size()), t.options());
  comm.reduce_scatter(t.data_ptr(), out.data_ptr(), out.numel(), to_dtype(t.scalar_type()), op);
  return out;
}

}  // namespace mpitrain
