// CRC-32C (Castagnoli): the whole-tensor digest every dataset carries (tensor_io.hpp), and the
// checksum TFRecord framing uses. SSE4.2's crc32 instruction where the CPU has it (~8 GB/s), a
// table otherwise; both give the standard value (crc32c("123456789") == 0xE3069283).
#pragma once
#include <cstddef>
#include <cstdint>

namespace hdf5_io {

uint32_t crc32c(const void* data, size_t n);

}  // namespace hdf5_io
