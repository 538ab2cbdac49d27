// Element types and reduction operators understood by every Communicator backend.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace mpitrain {

/// UInt8 is raw bytes: broadcast and gathered (strings, serialised state), never reduced.
enum class DType : uint8_t { Float32, Float64, BFloat16, Float16, Int32, Int64, UInt8 };
enum class ReduceOp : uint8_t { Sum, Avg, Min, Max, Prod };

/// Bytes per element.
size_t dtype_size(DType t);
/// "float32", "bfloat16", ...
const char* dtype_name(DType t);
/// "sum", "avg", ...
const char* reduce_op_name(ReduceOp op);
/// Parses the names above; throws ConfigError naming the bad value.
DType parse_dtype(const std::string& s);
ReduceOp parse_reduce_op(const std::string& s);

/// Throws ArgumentError if `op` is not defined on `t` (avg on integers: an integer mean is not
/// exact, so callers must sum and divide themselves).
void check_reduction_supported(DType t, ReduceOp op);

}  // namespace mpitrain
