#include "mpitrain/strategy/gradient_compression.hpp"

#include "mpitrain/errors.hpp"

namespace mpitrain {

const char* grad_compression_name(GradCompression c) {
  switch (c) {
    case GradCompression::None: return "none";
    case GradCompression::Fp16: return "fp16";
    case GradCompression::Bf16: return "bf16";
  }
  return "?";
}

GradCompression parse_grad_compression(const std::string& s) {
  for (auto c : {GradCompression::None, GradCompression::Fp16, GradCompression::Bf16})
    if (s == grad_compression_name(c)) return c;
  throw ConfigError("unknown gradient compression '" + s + "' (expected none, fp16 or bf16)");
}

}  // namespace mpitrain
