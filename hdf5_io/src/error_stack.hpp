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

/// HDF5's POSIX driver packs a whole report into its description ("file write failed: time =
/// ..., filename = ..., errno = 28, error message = 'No space left on device', buf = ...", with a
/// newline): keep what failed and why, on one line ("file write failed: No space left on device
/// (errno 28)").
inline std::string tidy_hdf5_description(std::string d) {
  const size_t msg = d.find("error message = '");
  if (msg != std::string::npos) {
    const size_t from = msg + 17, to = d.find('\'', from);
    const std::string why = d.substr(from, to == std::string::npos ? std::string::npos : to - from);
    const size_t err = d.find("errno = ");
    const std::string no = err == std::string::npos ? "" : d.substr(err + 8, d.find_first_not_of("0123456789", err + 8) - err - 8);
    const size_t head = d.find(": time =");
    d = (head == std::string::npos ? std::string("HDF5 I/O failed") : d.substr(0, head)) + ": " + why +
        (no.empty() ? "" : " (errno " + no + ")");
  }
  for (char& c : d)
    if (c == '\n' || c == '\r') c = ' ';
  return d;
}

inline herr_t collect_deepest_error(unsigned n, const H5E_error2_t* e, void* out) {
  if (n == 0 && e->desc && *e->desc) *static_cast<std::string*>(out) = tidy_hdf5_description(e->desc);
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
