// The driver <-> worker protocol: typed headers and the protocol version over LineChannel's JSON
// lines. MessageType (task_context.hpp) is the one list of kinds; messages keep "type" as a name.
#pragma once
#include <nlohmann/json.hpp>

#include "mpitrain/launch/launcher.hpp"
#include "mpitrain/launch/task_context.hpp"

namespace mpitrain::detail {

/// Carried in hello (worker -> driver) and task (driver -> worker) as "protocol". Bump it when a
/// message changes meaning, so that mixed builds fail clearly instead of misreading each other.
constexpr int kProtocolVersion = 1;  // (the stop message, added later, is one old peers ignore)

struct MessageHeader {
  MessageType type;
  int rank;  ///< the sender's rank; -1 for messages from the driver
};

/// The header of `m`. Throws Error ("protocol error: ...") for a missing or unknown type.
MessageHeader read_header(const nlohmann::json& m);

/// `body` with its header fields set: "type" (the kind's name) and "rank" (omitted when < 0).
nlohmann::json make_message(MessageType type, int rank, nlohmann::json body = nlohmann::json::object());

/// The task a driver sends every worker of a job: protocol, entry, payload, cpus_per_worker,
/// use_gpu, comm_timeout_ms, print_topology.
nlohmann::json task_message(const std::string& entry, const nlohmann::json& payload, const ScalingConfig& scaling,
                            const LaunchOptions& options, bool print_topology);

/// Throws ConfigError when `m` (a hello or a task) carries another protocol version than this
/// build's; `peer` names the sender ("worker rank 1", "the driver").
void check_protocol_version(const nlohmann::json& m, const std::string& peer);

}  // namespace mpitrain::detail
