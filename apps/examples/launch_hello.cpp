// The smallest spawn-mode program: run it alone (it spawns 2 workers, twice), or under
// mpirun -n N / srun -n N --mpi=pmix (it runs in place on N ranks).
#include <iostream>

#include "mpitrain/launch/launcher.hpp"
#include "mpitrain/launch/registry.hpp"
#include "mpitrain/launch/runtime.hpp"

nlohmann::json work(mpitrain::TaskContext& ctx, const nlohmann::json& payload) {  // runs on every worker
  double x = ctx.rank() * payload.value("scale", 1.0);
  ctx.comm().allreduce(&x, &x, 1, mpitrain::DType::Float64, mpitrain::ReduceOp::Sum);
  ctx.report_metric("sum", x);
  ctx.log("hello from " + ctx.env().hostname);
  return {{"sum", x}, {"world", ctx.world_size()}};  // rank 0's value becomes Result::value
}
MPITRAIN_REGISTER_ENTRY_POINT("work", work);  // spawned workers find it by name

int main(int argc, char** argv) {
  mpitrain::Runtime rt(argc, argv);  // a spawned worker serves its task in here and exits
  for (int workers : {2, 4}) {       // two jobs in one program, as with Ray
    mpitrain::ScalingConfig scaling;
    scaling.num_workers = workers;   // ignored under mpirun/srun: the launcher's world is the job
    mpitrain::Result r = mpitrain::launch("work", {{"scale", 2.0}}, scaling);
    if (!r.ok()) {
      std::cerr << "launch failed: " << r.error << "\n";  // "rank 1: <message>"
      return 1;
    }
    if (rt.env().rank == 0) std::cout << "result " << r.value.dump() << " ready after " << r.ready_seconds << " s\n";
  }
  return 0;
}
