// The driver <-> worker protocol: message kinds by name, headers, the protocol version.
#include "protocol.hpp"

#include "mpitrain/errors.hpp"

namespace mpitrain {

const char* message_type_name(MessageType t) {
  switch (t) {
    case MessageType::Hello: return "hello";
    case MessageType::Task: return "task";
    case MessageType::Heartbeat: return "heartbeat";
    case MessageType::Progress: return "progress";
    case MessageType::Metric: return "metric";
    case MessageType::Log: return "log";
    case MessageType::Result: return "result";
    case MessageType::Error: return "error";
    case MessageType::Stop: return "stop";
  }
  return "unknown";
}

std::optional<MessageType> parse_message_type(const std::string& name) {
  for (MessageType t : {MessageType::Hello, MessageType::Task, MessageType::Heartbeat, MessageType::Progress,
                        MessageType::Metric, MessageType::Log, MessageType::Result, MessageType::Error, MessageType::Stop})
    if (name == message_type_name(t)) return t;
  return std::nullopt;
}

namespace detail {

MessageHeader read_header(const nlohmann::json& m) {
  if (!m.is_object() || !m.contains("type") || !m["type"].is_string())
    throw Error("protocol error: a message without a type: " + m.dump().substr(0, 200));
  const std::string name = m["type"];
  const auto type = parse_message_type(name);
  if (!type) throw Error("protocol error: unknown message type '" + name + "'");
  const auto rank = m.find("rank");
  return {*type, rank != m.end() && rank->is_number_integer() ? rank->get<int>() : -1};
}

nlohmann::json make_message(MessageType type, int rank, nlohmann::json body) {
  body["type"] = message_type_name(type);
  if (rank >= 0) body["rank"] = rank;
  return body;
}

nlohmann::json task_message(const std::string& entry, const nlohmann::json& payload, const ScalingConfig& scaling,
                            const LaunchOptions& options, bool print_topology) {
  return make_message(MessageType::Task, -1,
                      {{"protocol", kProtocolVersion},
                       {"entry", entry},
                       {"payload", payload},
                       {"cpus_per_worker", scaling.cpus_per_worker},
                       {"use_gpu", scaling.use_gpu},
                       {"comm_timeout_ms", options.comm_timeout.count()},
                       {"liveness_timeout_ms", options.liveness_timeout.count()},
                       {"print_topology", print_topology}});
}

void check_protocol_version(const nlohmann::json& m, const std::string& peer) {
  const auto v = m.find("protocol");
  const int version = v != m.end() && v->is_number_integer() ? v->get<int>() : 0;
  if (version == kProtocolVersion) return;
  throw ConfigError("protocol error: " + peer + " speaks " +
                    (version > 0 ? "launch protocol " + std::to_string(version) : std::string("no launch protocol")) +
                    ", this process speaks " + std::to_string(kProtocolVersion) +
                    " (driver and workers must run the same mpitrain build)");
}

}  // namespace detail
}  // namespace mpitrain
