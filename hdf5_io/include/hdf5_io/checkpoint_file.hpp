// Checkpoint files (DESIGN §3): the format identity, crash-safe writing and the directory
// bookkeeping, independent of what is stored (the train layer maps models, optimizers and
// trainer state onto groups of these files).
//
// A file is written as "<name>.tmp", flushed, fsynced, renamed to "<name>" and the directory
// fsynced; only then is the directory's `latest` pointer (a one-line text file naming the
// checkpoint, itself replaced by rename) moved. A crash at any point leaves the previous
// checkpoint and pointer intact; stale "*.tmp" files are removed by the next save.
#pragma once
#include <H5Cpp.h>

#include <cstdint>
#include <string>
#include <vector>

#include "hdf5_io/tensor_io.hpp"

namespace hdf5_io {

inline constexpr const char* kFormatName = "mpitrain-checkpoint";
inline constexpr int64_t kFormatVersion = 1;

/// Integer attributes (int64 scalars; h5py reads them as numpy ints).
void set_int_attribute(H5::H5Object& obj, const std::string& name, int64_t value);
int64_t get_int_attribute(const H5::H5Object& obj, const std::string& name);  // CheckpointError if missing

/// Writes one checkpoint file crash-safely. Destroyed without commit(): the temporary is removed.
class CheckpointWriter {
 public:
  /// Creates "<path>.tmp" and stamps the format name and version on its root.
  explicit CheckpointWriter(std::string path);
  ~CheckpointWriter();
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  H5::H5File& file() { return file_; }
  /// Closes, fsyncs and renames the file into place, then fsyncs the directory. Every group or
  /// dataset handle into the file must be closed first (CheckpointError otherwise).
  void commit();
  const std::string& path() const { return path_; }

 private:
  std::string path_, tmp_;
  H5::H5File file_;
  bool committed_ = false;
};

/// Opens a checkpoint for reading and checks its identity: CheckpointError for a missing path,
/// a file that is not HDF5, a different format, or a version newer than kFormatVersion.
H5::H5File open_checkpoint(const std::string& path);

/// Reads every dataset of the file, every chunked one (all but 0-d scalars) through its
/// Fletcher-32 checksum. Returns the number of datasets; CheckpointError naming the first that fails.
int64_t verify_checkpoint(const std::string& path);

/// Writes only /model and /buffers of the checkpoint at `src` to `dst` (root attribute kind =
/// "weights"; module, config and strategy attributes are copied). Crash-safe like any checkpoint.
void export_weights(const std::string& src, const std::string& dst);

/// fsync of a file or directory; CheckpointError naming the path on failure.
void fsync_path(const std::string& path, bool directory = false);

/// The `latest` pointer of a checkpoint directory.
/// The path of the checkpoint `latest` names, or "" if there is no pointer.
std::string read_latest(const std::string& dir);
/// Atomically points `latest` at `file_name` (a file inside `dir`).
void write_latest(const std::string& dir, const std::string& file_name);
/// Removes the temporaries a crashed save left in `dir` ("*.h5.tmp", "latest.tmp"; nothing else).
/// Returns how many it removed.
int remove_stale_temporaries(const std::string& dir);

}  // namespace hdf5_io
