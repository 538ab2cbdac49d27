#include "mpitrain/launch/task_context.hpp"

namespace mpitrain {

const char* message_type_name(MessageType t) {
  switch (t) {
    case MessageType::Hello: return "hello";
    case MessageType::Heartbeat: return "heartbeat";
    case MessageType::Progress: return "progress";
    case MessageType::Metric: return "metric";
    case MessageType::Log: return "log";
    case MessageType::Result: return "result";
    case MessageType::Error: return "error";
  }
  return "unknown";
}

void TaskContext::send(MessageType t, nlohmann::json body) {
  body["type"] = message_type_name(t);
  body["rank"] = env_.rank;
  sink_(body);
}
void TaskContext::report_metric(const std::string& name, double value, int64_t step) {
  send(MessageType::Metric, {{"name", name}, {"value", value}, {"step", step}});
}
void TaskContext::report_progress(const nlohmann::json& progress) { send(MessageType::Progress, {{"progress", progress}}); }
void TaskContext::log(const std::string& line) { send(MessageType::Log, {{"line", line}}); }

}  // namespace mpitrain
