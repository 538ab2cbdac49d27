#include "mpitrain/comm/types.hpp"

#include "mpitrain/errors.hpp"

namespace mpitrain {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::Float32: case DType::Int32: return 4;
    case DType::Float64: case DType::Int64: return 8;
    case DType::BFloat16: case DType::Float16: return 2;
    case DType::UInt8: return 1;
  }
  throw ArgumentError("unknown dtype code " + std::to_string(int(t)));
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::BFloat16: return "bfloat16";
    case DType::Float16: return "float16";
    case DType::Int32: return "int32";
    case DType::Int64: return "int64";
    case DType::UInt8: return "uint8";
  }
  return "unknown-dtype";
}

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return "sum";
    case ReduceOp::Avg: return "avg";
    case ReduceOp::Min: return "min";
    case ReduceOp::Max: return "max";
    case ReduceOp::Prod: return "prod";
  }
  return "unknown-op";
}

DType parse_dtype(const std::string& s) {
  for (DType t : {DType::Float32, DType::Float64, DType::BFloat16, DType::Float16, DType::Int32, DType::Int64,
                  DType::UInt8})
    if (s == dtype_name(t)) return t;
  throw ArgumentError("unknown dtype '" + s + "' (expected float32, float64, bfloat16, float16, int32, int64 or uint8)");
}

ReduceOp parse_reduce_op(const std::string& s) {
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Avg, ReduceOp::Min, ReduceOp::Max, ReduceOp::Prod})
    if (s == reduce_op_name(op)) return op;
  throw ArgumentError("unknown reduction '" + s + "' (expected sum, avg, min, max or prod)");
}

void check_reduction_supported(DType t, ReduceOp op) {
  dtype_size(t);  // rejects unknown codes
  if (op != ReduceOp::Sum && op != ReduceOp::Avg && op != ReduceOp::Min && op != ReduceOp::Max &&
      op != ReduceOp::Prod)
    throw ArgumentError("unknown reduction code " + std::to_string(int(op)));
  if (t == DType::UInt8)  // raw bytes (strings, serialised state): moved, never reduced
    throw ArgumentError(std::string("reduction ") + reduce_op_name(op) +
                        " is not supported for uint8 (bytes are broadcast or gathered, not reduced)");
  if (op == ReduceOp::Avg && (t == DType::Int32 || t == DType::Int64))
    throw ArgumentError(std::string("reduction avg is not supported for ") + dtype_name(t) +
                        " (an integer mean is inexact): use sum and divide");
}

}  // namespace mpitrain
