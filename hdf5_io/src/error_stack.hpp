// The deepest message of HDF5's error stack ("truncated file: eof = ...", "data error detected by
// Fletcher32 checksum", "No space left on device") says more than the C++ API's "H5Dread failed".
// Read it in the catch block, before any other HDF5 call (a handle's destructor too) clears it.
#pragma once
#include <H5Cpp.h>

#include <string>

namespace hdf5_io::detail {

inline herr_t collect_deepest_error(unsigned n, const H5E_error2_t* e, void* out) {
  if (n == 0 && e->desc && *e->desc) *static_cast<std::string*>(out) = e->desc;
  return 0;
}

/// `what` (e.g. the C++ exception's detail message) followed by the stack's deepest description.
inline std::string hdf5_cause(const std::string& what) {
  std::string deepest;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, collect_deepest_error, &deepest);
  return deepest.empty() ? what : what + ": " + deepest;
}
inline std::string hdf5_cause(const H5::Exception& e) { return hdf5_cause(e.getDetailMsg()); }

}  // namespace hdf5_io::detail
