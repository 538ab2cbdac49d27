// SPMD failure: the last rank stops taking part (hangs, or dies). Every surviving rank must exit
// non-zero within the collective deadline, with a message naming the collective.
// Usage (under mpirun/srun): spmd_failure hang|die
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "mpitrain/launch/launcher.hpp"
#include "mpitrain/launch/registry.hpp"
#include "mpitrain/launch/runtime.hpp"

namespace {
nlohmann::json stop_last_rank(mpitrain::TaskContext& ctx, const nlohmann::json& p) {
  float x = 1;
  ctx.comm().allreduce(&x, &x, 1, mpitrain::DType::Float32, mpitrain::ReduceOp::Sum);
  if (ctx.rank() == ctx.world_size() - 1) {
    if (p.at("how") == "die") ::raise(SIGKILL);
    std::this_thread::sleep_for(std::chrono::seconds(120));  // hung: never reaches the next collective
  }
  ctx.comm().allreduce(&x, &x, 1, mpitrain::DType::Float32, mpitrain::ReduceOp::Sum);
  return {};
}
MPITRAIN_REGISTER_ENTRY_POINT("stop_last_rank", stop_last_rank);
}  // namespace

int main(int argc, char** argv) {
  mpitrain::Runtime rt(argc, argv);
  mpitrain::LaunchOptions o;
  o.comm_timeout = std::chrono::seconds(3);
  mpitrain::launch("stop_last_rank", {{"how", argc > 1 ? argv[1] : "hang"}}, {}, o);
  return 0;  // not reached on a surviving rank
}
