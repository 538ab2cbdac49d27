// errors.hpp lives at the bottom of the layer stack; comm is the lowest library, so it carries this.
#include "mpitrain/errors.hpp"

namespace mpitrain {

const char* error_kind_name(ErrorKind k) {
  switch (k) {
    case ErrorKind::None: return "";
    case ErrorKind::Config: return "config";
    case ErrorKind::Argument: return "argument";
    case ErrorKind::Checkpoint: return "checkpoint";
    case ErrorKind::Comm: return "comm";
    case ErrorKind::Error: return "error";
    case ErrorKind::Exception: return "exception";
    case ErrorKind::Died: return "died";
  }
  return "exception";
}

ErrorKind parse_error_kind(const std::string& name) {
  for (ErrorKind k : {ErrorKind::None, ErrorKind::Config, ErrorKind::Argument, ErrorKind::Checkpoint, ErrorKind::Comm,
                      ErrorKind::Error, ErrorKind::Exception, ErrorKind::Died})
    if (name == error_kind_name(k)) return k;
  return ErrorKind::Exception;
}

ErrorKind error_kind_of(const std::exception& e) {
  if (dynamic_cast<const ConfigError*>(&e)) return ErrorKind::Config;
  if (dynamic_cast<const ArgumentError*>(&e)) return ErrorKind::Argument;
  if (dynamic_cast<const CheckpointError*>(&e)) return ErrorKind::Checkpoint;
  if (dynamic_cast<const CommError*>(&e)) return ErrorKind::Comm;
  if (auto* w = dynamic_cast<const WorkerFailure*>(&e)) return w->kind;
  if (dynamic_cast<const Error*>(&e)) return ErrorKind::Error;
  return ErrorKind::Exception;
}

bool is_bad_input(ErrorKind k) {
  return k == ErrorKind::Config || k == ErrorKind::Argument || k == ErrorKind::Checkpoint;
}

int exit_code_for(ErrorKind k) { return k == ErrorKind::None ? 0 : is_bad_input(k) ? 2 : 1; }

void throw_error(ErrorKind k, const std::string& message) {
  switch (k) {
    case ErrorKind::Config: throw ConfigError(message);
    case ErrorKind::Argument: throw ArgumentError(message);
    case ErrorKind::Checkpoint: throw CheckpointError(message);
    case ErrorKind::Comm: throw CommError(message);
    default: throw Error(message);
  }
}

}  // namespace mpitrain
