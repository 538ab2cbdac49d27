// What a task (an entry point running on every worker) sees: where it runs, a Communicator over
// the job's world, and a way to stream typed messages back to the driver.
#pragma once
#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "mpitrain/comm/communicator.hpp"
#include "mpitrain/launch/environment.hpp"

namespace mpitrain {

/// Kinds of driver <-> worker messages; the "type" field of every message is the kind's name.
/// Task goes driver -> worker, every other kind worker -> driver (and to LaunchOptions::on_message).
/// Stop: driver -> worker, "checkpoint and stop at the next step" (the driver got SIGTERM/SIGINT).
enum class MessageType { Hello, Task, Heartbeat, Progress, Metric, Log, Result, Error, Stop };
/// "hello", "task", "heartbeat", "progress", "metric", "log", "result", "error", "stop".
const char* message_type_name(MessageType t);
/// The inverse of message_type_name; nullopt for a name it does not know.
std::optional<MessageType> parse_message_type(const std::string& name);

class TaskContext {
 public:
  using Sink = std::function<void(const nlohmann::json&)>;
  TaskContext(Environment env, Communicator& comm, Sink sink) : env_(std::move(env)), comm_(comm), sink_(std::move(sink)) {}

  const Environment& env() const { return env_; }
  Communicator& comm() { return comm_; }
  int rank() const { return env_.rank; }
  int world_size() const { return env_.world_size; }
  bool is_rank_zero() const { return env_.rank == 0; }

  /// Streams a metric value to the driver (kept as the last value per name in Result::metrics).
  void report_metric(const std::string& name, double value, int64_t step = -1);
  /// Free-form progress (epoch, step, ...), shown by the driver's progress handler.
  void report_progress(const nlohmann::json& progress);
  /// One line of log text, printed by the driver prefixed with the rank.
  void log(const std::string& line);

 private:
  void send(MessageType t, nlohmann::json body);
  Environment env_;
  Communicator& comm_;
  Sink sink_;
};

}  // namespace mpitrain
