// at::Tensor conveniences over any Communicator. Tensors must be contiguous and of a supported
// dtype; CPU tensors go to the MPI backend, CUDA tensors to NCCL (the Communicator checks).
#pragma once
#include <ATen/core/Tensor.h>

#include "mpitrain/comm/communicator.hpp"

namespace mpitrain {

/// float32/float64/bfloat16/float16/int32/int64; anything else throws ArgumentError naming it.
DType to_dtype(c10::ScalarType t);
c10::ScalarType to_scalar_type(DType t);

/// In place.
Work iallreduce(Communicator& comm, at::Tensor& t, ReduceOp op = ReduceOp::Sum);
void allreduce(Communicator& comm, at::Tensor& t, ReduceOp op = ReduceOp::Sum);
/// Out of place: `out` must have the dtype and number of elements of `in`.
void allreduce(Communicator& comm, const at::Tensor& in, at::Tensor& out, ReduceOp op = ReduceOp::Sum);
void broadcast(Communicator& comm, at::Tensor& t, int root);
/// Equal shapes on every rank: the result stacks them, shape [size() * d0, d1, ...].
at::Tensor allgather(Communicator& comm, const at::Tensor& t);
/// Dimension 0 may differ across ranks (other dimensions must match): concatenated in rank order.
at::Tensor allgather_variable(Communicator& comm, const at::Tensor& t);
/// Dimension 0 must be divisible by size(): rank r gets the reduction of the r-th block.
at::Tensor reduce_scatter(Communicator& comm, const at::Tensor& t, ReduceOp op = ReduceOp::Sum);

}  // namespace mpitrain
