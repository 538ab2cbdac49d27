// The driver <-> worker protocol (src/launch/protocol.hpp) and the reading of Open MPI's reports
// (leader_process.hpp), without MPI: kinds by name, headers that reject unknown or missing types,
// the protocol version in hello and task.
#include <gtest/gtest.h>

#include "leader_process.hpp"
#include "mpitrain/errors.hpp"
#include "protocol.hpp"

namespace mpitrain::detail {
namespace {

template <class E, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "<no exception of the expected type>";
}

TEST(Protocol, EveryKindRoundTripsByName) {
  for (MessageType t : {MessageType::Hello, MessageType::Task, MessageType::Heartbeat, MessageType::Progress,
                        MessageType::Metric, MessageType::Log, MessageType::Result, MessageType::Error})
    EXPECT_EQ(parse_message_type(message_type_name(t)), t) << message_type_name(t);
  EXPECT_FALSE(parse_message_type("gossip"));
  EXPECT_FALSE(parse_message_type(""));
}

TEST(Protocol, HeaderOfAMessage) {
  const nlohmann::json m = make_message(MessageType::Metric, 3, {{"name", "loss"}, {"value", 0.5}});
  EXPECT_EQ(m.at("type"), "metric");  // on_message users read the type as a string
  const MessageHeader h = read_header(m);
  EXPECT_EQ(h.type, MessageType::Metric);
  EXPECT_EQ(h.rank, 3);
  EXPECT_EQ(read_header(make_message(MessageType::Task, -1)).rank, -1);
  EXPECT_FALSE(make_message(MessageType::Task, -1).contains("rank"));
}

TEST(Protocol, UnknownOrMissingTypesAreProtocolErrors) {
  EXPECT_NE(error_of<Error>([] { read_header({{"type", "gossip"}, {"rank", 0}}); })
                .find("protocol error: unknown message type 'gossip'"),
            std::string::npos);
  EXPECT_NE(error_of<Error>([] { read_header({{"rank", 0}}); }).find("protocol error: a message without a type"),
            std::string::npos);
  EXPECT_NE(error_of<Error>([] { read_header({{"type", 7}}); }).find("without a type"), std::string::npos);
}

TEST(Protocol, AnotherVersionIsAConfigErrorNamingBoth) {
  EXPECT_NO_THROW(check_protocol_version({{"protocol", kProtocolVersion}}, "worker rank 1"));
  const std::string other = error_of<ConfigError>([] { check_protocol_version({{"protocol", 2}}, "worker rank 1"); });
  EXPECT_NE(other.find("protocol error: worker rank 1 speaks launch protocol 2, this process speaks 1"),
            std::string::npos)
      << other;
  const std::string none = error_of<ConfigError>([] { check_protocol_version({{"type", "task"}}, "the driver"); });
  EXPECT_NE(none.find("the driver speaks no launch protocol"), std::string::npos) << none;
}

TEST(Protocol, TheTaskCarriesTheVersion) {
  ScalingConfig sc;
  sc.cpus_per_worker = 3;
  const nlohmann::json t = task_message("entry", {{"k", 1}}, sc, {}, false);
  EXPECT_EQ(read_header(t).type, MessageType::Task);
  EXPECT_EQ(t.at("protocol"), kProtocolVersion);
  EXPECT_EQ(t.at("entry"), "entry");
  EXPECT_EQ(t.at("cpus_per_worker"), 3);
  EXPECT_EQ(t.at("use_gpu"), false);
}

TEST(LeaderReports, WorkerExitsAreReadFromOpenMpisWords) {
  EXPECT_EQ(worker_exit_report("... process rank 1 with PID 0 on node vm exited on signal 9 (Killed)."),
            "was killed by signal 9 (Killed)");
  EXPECT_EQ(worker_exit_report("  Process name: [[1,1],1]\n  Exit code:    7\n"),
            "exited with code 7 before finishing its task");
  EXPECT_EQ(worker_exit_report("nothing yet"), "");
  EXPECT_EQ(launcher_tail(""), "");
  EXPECT_EQ(launcher_tail(std::string(700, 'x')), "; launcher said: " + std::string(600, 'x'));
}

}  // namespace
}  // namespace mpitrain::detail
