// hdf5_io is a library of its own with its own error type; callers of mpitrain see one family.
// Shared by the train layer's two checkpoint formats (checkpoint.cpp, loop/checkpoint.cpp).
#pragma once
#include "hdf5_io/checkpoint_file.hpp"
#include "mpitrain/errors.hpp"

namespace mpitrain::detail {

/// f(), with hdf5_io's and the HDF5 C++ API's exceptions rethrown as mpitrain::CheckpointError.
template <class F>
auto translated(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const hdf5_io::CheckpointError& e) {
    throw CheckpointError(e.what());
  } catch (const H5::Exception& e) {
    throw CheckpointError("HDF5 error in " + e.getFuncName() + ": " + e.getDetailMsg());
  }
}

}  // namespace mpitrain::detail
