// Helpers shared by the hdf5_io unit tests: the error a call raises, file contents, and bytes
// flipped in place to simulate corruption.
#pragma once
#include <H5Cpp.h>

#include <fstream>
#include <functional>
#include <string>
#include <typeinfo>

#include "hdf5_io/tensor_io.hpp"

namespace hdf5_io::test {

/// The CheckpointError message, or a marker saying what happened instead (no error, another type).
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const CheckpointError& e) {
    return e.what();
  } catch (const H5::Exception& e) {
    return "<raw H5::Exception: " + e.getDetailMsg() + ">";
  } catch (const std::exception& e) {
    return std::string("<other exception ") + typeid(e).name() + ": " + e.what() + ">";
  }
  return "<no CheckpointError>";
}

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

/// Flips bit 4 of the byte at offset `at` of the file at `path`.
inline void flip_byte_at(const std::string& path, hsize_t at) {
  std::fstream io(path, std::ios::in | std::ios::out | std::ios::binary);
  io.seekg(std::streamoff(at));
  char c = 0;
  io.read(&c, 1);
  c = char(c ^ 0x10);
  io.seekp(std::streamoff(at));
  io.write(&c, 1);
}

}  // namespace hdf5_io::test
