// Exception families shared by every layer (DESIGN §4): one type per failure family, so apps can
// map each to a one-line message and a non-zero exit on every rank. ErrorKind names the family
// where an exception cannot travel as itself (across ranks, from a worker to the driver), so that
// the receiver rethrows the same type and exit codes follow from the kind, never from strings.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace mpitrain {

/// Base of every mpitrain exception.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Bad user input: options, arguments, configuration values.
struct ConfigError : Error {
  using Error::Error;
};

/// An API was called with invalid arguments (negative count, unsupported dtype/op pair, tensors
/// that do not match). Raised before anything starts, so the object that raised it stays usable.
struct ArgumentError : Error {
  using Error::Error;
};

/// A collective failed: deadline expired, peers disagree on the call, backend error.
/// After a CommError the Communicator that raised it is poisoned: every later call throws too.
struct CommError : Error {
  using Error::Error;
};

/// A checkpoint cannot be written or read: missing, not HDF5, another format or a newer version,
/// another model (names, shapes), or corrupt (a checksum failed). The message names the file and,
/// where one is at fault, the dataset.
struct CheckpointError : Error {
  using Error::Error;
};

/// The family of a failure. Values travel between processes: append, never renumber.
enum class ErrorKind : int32_t {
  None = 0,    ///< no failure
  Config,      ///< ConfigError: bad options, configuration
  Argument,    ///< ArgumentError: an API called with invalid arguments
  Checkpoint,  ///< CheckpointError: a checkpoint that cannot be read or written
  Comm,        ///< CommError: a collective failed (deadline, mismatch, backend)
  Error,       ///< any other mpitrain::Error
  Exception,   ///< any other std::exception, or an unknown exception
  Died,        ///< a process ended (signal, exit code, lost contact) before finishing its task
};

/// "config", "argument", "checkpoint", "comm", "error", "exception", "died" ("" for None).
const char* error_kind_name(ErrorKind k);
/// The inverse of error_kind_name; Exception for a name it does not know.
ErrorKind parse_error_kind(const std::string& name);
/// The kind of an exception's most derived family.
ErrorKind error_kind_of(const std::exception& e);
/// Bad input (config, argument, checkpoint): fails the same way every time, so it is never
/// retried, and the apps exit 2 on it.
bool is_bad_input(ErrorKind k);
/// Process exit code for a failure of kind `k`: 0 for None, 2 for bad input, 1 otherwise.
int exit_code_for(ErrorKind k);
/// Throws the exception type of `k` with `message` (Error for Died and Exception).
[[noreturn]] void throw_error(ErrorKind k, const std::string& message);

/// A job's worker failed (exception, signal, early exit); the message starts with "rank r: ".
/// Thrown by launch()/fit() when asked to (LaunchOptions::throw_on_error), else returned in a result.
struct WorkerFailure : Error {
  WorkerFailure(const std::string& msg, int rank, ErrorKind kind = ErrorKind::Died)
      : Error(msg), rank(rank), kind(kind) {}
  int rank;
  ErrorKind kind;  ///< what the worker failed with
};

}  // namespace mpitrain
