// The smallest spawn-mode program: run it alone (it spawns its workers, twice: 2 then 4), or
// under mpirun -n N / srun -n N --mpi=pmix (it runs in place on the N ranks).
//   mpitrain-example-launch [--workers N] [--entry NAME] [--spawn]
#include <boost/program_options.hpp>
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
  namespace po = boost::program_options;
  po::options_description desc("mpitrain-example-launch [options]");
  int workers = 0;
  std::string entry = "work";
  bool spawn = false;
  desc.add_options()("help,h", "this help")
      ("workers", po::value(&workers), "workers per job (default: a job of 2, then one of 4)")
      ("entry", po::value(&entry)->default_value(entry), "registered entry point to run")
      ("spawn", po::bool_switch(&spawn), "require spawn mode (an error under mpirun/srun)");
  try {
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
    if (vm.count("help")) {
      std::cout << desc;
      return 0;
    }
    mpitrain::LaunchOptions options;
    if (spawn) options.mode = mpitrain::LaunchMode::Spawn;
    const std::vector<int> jobs = vm.count("workers") ? std::vector<int>{workers} : std::vector<int>{2, 4};
    for (int n : jobs) {  // several jobs in one program, as with Ray
      mpitrain::ScalingConfig scaling;
      scaling.num_workers = n;  // under mpirun/srun the launcher's world is the job
      mpitrain::Result r = mpitrain::launch(entry, {{"scale", 2.0}}, scaling, options);
      if (!r.ok()) {
        std::cerr << "mpitrain-example-launch: " << r.error << "\n";  // "rank 1: <message>"
        return 1;
      }
      if (rt.env().rank == 0) std::cout << "result " << r.value.dump() << " ready after " << r.ready_seconds << " s\n";
    }
  } catch (const po::error& e) {
    std::cerr << "mpitrain-example-launch: " << e.what() << " (see --help)\n";
    return 2;
  } catch (const mpitrain::ConfigError& e) {
    if (rt.env().rank == 0) std::cerr << "mpitrain-example-launch: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
