// The deepest message of HDF5's error stack ("truncated file: eof = ...", "data error detected by
// Fletcher32 checksum", "No space left on device") says more than the C++ API's "H5Dread failed".
// Every later HDF5 call clears that stack (a handle's destructor during unwinding, getObjName() in
// the message), so it is captured when the failing call returns: HDF5 calls its "auto" error
// handler right then, and ours copies the description instead of printing the stack.
#pragma once
#include <H5Cpp.h>

#include <string>

namespace hdf5_io::detail {

inline thread_local std::string last_hdf5_error;

inline herr_t collect_deepest_error(unsigned n, const H5E_error2_t* e, void* out) {
  if (n == 0 && e->desc && *e->desc) *static_cast<std::string*>(out) = e->desc;
  return 0;
}

inline herr_t capture_hdf5_error(hid_t stack, void*) {
  std::string deepest;
  H5Ewalk2(stack, H5E_WALK_UPWARD, collect_deepest_error, &deepest);
  if (!deepest.empty()) last_hdf5_error = deepest;
  return 0;
}

/// Installs the capturing handler for this thread (HDF5 keeps one per thread in thread-safe builds).
inline void capture_hdf5_errors() {
  static thread_local bool installed = false;
  if (installed) return;
  H5Eset_auto2(H5E_DEFAULT, capture_hdf5_error, nullptr);
  installed = true;
}

/// `what` (e.g. the C++ exception's detail message) followed by the deepest description of the
/// failure that raised it (consumed: the next failure records its own).
inline std::string hdf5_cause(const std::string& what) {
  std::string deepest;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, collect_deepest_error, &deepest);  // still there, if nothing ran since
  if (deepest.empty()) deepest = last_hdf5_error;
  last_hdf5_error.clear();
  return deepest.empty() ? what : what + ": " + deepest;
}
inline std::string hdf5_cause(const H5::Exception& e) { return hdf5_cause(e.getDetailMsg()); }

}  // namespace hdf5_io::detail
