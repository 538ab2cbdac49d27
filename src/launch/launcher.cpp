// launch(): the checks that reject bad input before anything starts, then the dispatch to a
// spawn-mode job (spawn_job.cpp) or an in-place SPMD run (spmd.cpp).
#include "mpitrain/launch/launcher.hpp"

#include <cstdlib>

#include "mpitrain/errors.hpp"
#include "mpitrain/launch/registry.hpp"
#include "mpitrain/launch/runtime.hpp"
#include "spawn_job.hpp"
#include "spmd.hpp"

namespace mpitrain {

namespace {
bool under_slurm_step() {
  const char* step = std::getenv("SLURM_STEP_ID");
  return step && *step && std::getenv("SLURM_PROCID");
}

const EntryPoint& entry_point(const std::string& entry) {
  const EntryPoint* fn = find_entry_point(entry);
  if (fn) return *fn;
  std::string names;
  for (auto& n : entry_point_names()) names += (names.empty() ? "" : ", ") + n;
  throw ConfigError("unknown entry point '" + entry + "' (registered: " + (names.empty() ? "none" : names) + ")");
}

void check_spmd(const Runtime* rt, const LaunchOptions& options) {
  if (options.mode == LaunchMode::Spawn)
    throw ConfigError(under_slurm_step()
                          ? "spawn mode requested under srun: Slurm's PMIx cannot MPI_Comm_spawn; run SPMD instead "
                            "(srun -n N --mpi=pmix ./app) or start the driver alone (e.g. as the single task of sbatch)"
                          : "spawn mode requested under mpirun: this process is already one rank of an MPI job; run "
                            "it alone to spawn workers, or let it train in place (SPMD)");
  if (!rt) throw ConfigError("SPMD launch needs an mpitrain::Runtime constructed at the top of main()");
}

void check_spawn(Role role, const ScalingConfig& scaling, const LaunchOptions& options) {
  if (role != Role::Driver) throw ConfigError(std::string("launch() called in the ") + role_name(role) + " role");
  if (options.mode == LaunchMode::Spmd)
    throw ConfigError("SPMD mode requested but this process was not started by mpirun or srun");
  if (scaling.num_workers <= 0)
    throw ConfigError("num_workers must be at least 1 (got " + std::to_string(scaling.num_workers) + ")");
  if (scaling.cpus_per_worker <= 0)
    throw ConfigError("cpus_per_worker must be at least 1 (got " + std::to_string(scaling.cpus_per_worker) + ")");
  if (under_slurm_step())
    throw ConfigError("spawn mode under srun: Slurm's PMIx cannot MPI_Comm_spawn; run SPMD instead "
                      "(srun -n N --mpi=pmix ./app)");
}
}  // namespace

Result launch(const std::string& entry, const nlohmann::json& payload, const ScalingConfig& scaling,
              const LaunchOptions& options) {
  const EntryPoint& fn = entry_point(entry);
  const Runtime* rt = Runtime::current();
  const Role role = rt ? rt->role() : detect_role(0, nullptr);
  if (role == Role::Spmd) {
    check_spmd(rt, options);
    return detail::run_in_place(fn, payload, scaling, options);
  }
  check_spawn(role, scaling, options);
  Result r = detail::run_spawn_job(entry, payload, scaling, options);
  if (options.throw_on_error && !r.ok()) throw WorkerFailure(r.error, r.failed_rank, r.error_kind);
  return r;
}

}  // namespace mpitrain
