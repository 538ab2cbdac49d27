// Exception families shared by every layer (DESIGN §4): one type per failure family, so apps can
// map each to a one-line message and a non-zero exit on every rank.
#pragma once
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

/// A job's worker failed (exception, signal, early exit); the message starts with "rank r: ".
/// Thrown by launch()/fit() when asked to (LaunchOptions::throw_on_error), else returned in Result.
struct WorkerFailure : Error {
  WorkerFailure(const std::string& msg, int rank) : Error(msg), rank(rank) {}
  int rank;
};

/// The Result::error_kind name of an exception's family ("config", "checkpoint", "comm", "exception").
inline const char* error_kind_of(const std::exception& e) {
  if (dynamic_cast<const ConfigError*>(&e) || dynamic_cast<const ArgumentError*>(&e)) return "config";
  if (dynamic_cast<const CheckpointError*>(&e)) return "checkpoint";
  if (dynamic_cast<const CommError*>(&e)) return "comm";
  return "exception";
}

}  // namespace mpitrain
