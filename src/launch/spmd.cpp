// SPMD: run_in_place, the entry point on the launcher's world; rank 0's value goes to everyone.
#include "spmd.hpp"

#include <mpi.h>

#include <chrono>

#include "console.hpp"
#include "mpitrain/comm/agreement.hpp"
#include "mpitrain/launch/make_communicator.hpp"
#include "mpitrain/launch/runtime.hpp"
#include "mpitrain/detail/json_number.hpp"
#include "protocol.hpp"

namespace mpitrain::detail {

Result run_in_place(const EntryPoint& fn, const nlohmann::json& payload, const ScalingConfig& scaling,
                    const LaunchOptions& o) {
  Environment env = Runtime::current()->env();
  env.use_gpu = scaling.use_gpu;
  CommOptions copts;
  copts.timeout = o.comm_timeout;
  copts.liveness_timeout = o.liveness_timeout;
  std::unique_ptr<Communicator> comm = make_communicator(MPI_COMM_WORLD, env, copts);
  Result result;
  auto on_message = o.on_message ? o.on_message : default_message_handler;
  const int rank = env.rank;
  TaskContext ctx(env, *comm, [&](const nlohmann::json& m) {
    if (read_header(m).type == MessageType::Metric) result.metrics[m.value("name", "")] = detail::number_or_nan(m.value("value", nlohmann::json()));
    if (rank == 0) on_message(m);  // only rank 0 prints
  });
  const auto t0 = std::chrono::steady_clock::now();
  nlohmann::json value = fn(ctx, payload);  // exceptions propagate: Runtime's handler ends every rank
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::string text = rank == 0 ? value.dump() : std::string();
  broadcast_bytes(*comm, text, 0);
  result.value = nlohmann::json::parse(text);
  result.wall_seconds.resize(size_t(comm->size()));
  comm->allgather(&wall, result.wall_seconds.data(), 1, DType::Float64);
  result.total_seconds = wall;
  return result;
}

}  // namespace mpitrain::detail
