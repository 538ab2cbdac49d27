#include "mpitrain/launch/task_context.hpp"

#include "mpitrain/detail/json_number.hpp"
#include "protocol.hpp"

namespace mpitrain {

void TaskContext::send(MessageType t, nlohmann::json body) { sink_(detail::make_message(t, env_.rank, std::move(body))); }
void TaskContext::report_metric(const std::string& name, double value, int64_t step) {
  send(MessageType::Metric, {{"name", name}, {"value", detail::json_number(value)}, {"step", step}});
}
void TaskContext::report_progress(const nlohmann::json& progress) { send(MessageType::Progress, {{"progress", progress}}); }
void TaskContext::log(const std::string& line) { send(MessageType::Log, {{"line", line}}); }

}  // namespace mpitrain
