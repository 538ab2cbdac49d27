// Gradient compression on the wire (Horovod's Compression.fp16): gradients are cast to a 16-bit
// type before the allreduce and back after it, halving the bytes moved at the cost of precision.
#pragma once
#include <cstdint>
#include <string>

namespace mpitrain {

enum class GradCompression : uint8_t { None, Fp16, Bf16 };

/// "none", "fp16", "bf16".
const char* grad_compression_name(GradCompression c);
/// The inverse; ConfigError naming the value and the choices otherwise.
GradCompression parse_grad_compression(const std::string& s);

}  // namespace mpitrain
