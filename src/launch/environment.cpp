#include "mpitrain/launch/environment.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "mpitrain/errors.hpp"

namespace mpitrain {

const char* role_name(Role r) {
  switch (r) {
    case Role::Driver: return "driver";
    case Role::Leader: return "leader";
    case Role::Worker: return "worker";
    case Role::Spmd: return "spmd";
  }
  return "unknown";
}

namespace {
int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}
bool has_env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v;
}
void cross_check(const char* var, int from_env, const char* what, int from_mpi) {
  if (from_env >= 0 && from_env != from_mpi)
    throw ConfigError(std::string("environment disagrees with MPI: ") + var + "=" + std::to_string(from_env) +
                      " but MPI reports " + what + " " + std::to_string(from_mpi) +
                      " (was this binary started by a different launcher than its MPI library expects?)");
}
}  // namespace

Role detect_role(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--mpitrain-worker", 17) == 0) return Role::Worker;
    if (std::strncmp(argv[i], "--mpitrain-leader", 17) == 0) return Role::Leader;
  }
  // A launcher that gives us a world: Open MPI's mpirun, Slurm's PMIx/PMI2.
  if (has_env("OMPI_COMM_WORLD_SIZE") || has_env("PMIX_RANK") || has_env("PMI_RANK")) return Role::Spmd;
  return Role::Driver;
}

Environment detect_environment(MPI_Comm world, Role role, bool use_gpu) {
  Environment e;
  e.role = role;
  e.pid = int(::getpid());
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  e.hostname = host;
  MPI_Comm_rank(world, &e.rank);
  MPI_Comm_size(world, &e.world_size);
  MPI_Comm node;
  MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, e.rank, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &e.local_rank);
  MPI_Comm_size(node, &e.local_size);
  MPI_Comm_free(&node);
  int leader = e.local_rank == 0;
  MPI_Allreduce(&leader, &e.num_nodes, 1, MPI_INT, MPI_SUM, world);
  // node_rank: the number of node leaders with a lower world rank than this node's leader.
  std::vector<int> leaders(size_t(e.world_size));
  MPI_Allgather(&leader, 1, MPI_INT, leaders.data(), 1, MPI_INT, world);
  int my_leader = e.rank - e.local_rank;  // ranks are block-placed on the launchers we support
  for (int r = 0; r < e.world_size; ++r)
    if (leaders[size_t(r)] && r < my_leader) ++e.node_rank;

  // The launcher's view must agree with MPI's (SPMD only: spawned workers have their own world).
  if (role == Role::Spmd) {
    cross_check("OMPI_COMM_WORLD_RANK", env_int("OMPI_COMM_WORLD_RANK", -1), "rank", e.rank);
    cross_check("OMPI_COMM_WORLD_SIZE", env_int("OMPI_COMM_WORLD_SIZE", -1), "world size", e.world_size);
    cross_check("OMPI_COMM_WORLD_LOCAL_RANK", env_int("OMPI_COMM_WORLD_LOCAL_RANK", -1), "local rank", e.local_rank);
    if (has_env("SLURM_STEP_ID") && has_env("PMIX_RANK")) {
      cross_check("SLURM_PROCID", env_int("SLURM_PROCID", -1), "rank", e.rank);
      cross_check("SLURM_NTASKS", env_int("SLURM_STEP_NUM_TASKS", env_int("SLURM_NTASKS", -1)), "world size",
                  e.world_size);
      cross_check("SLURM_LOCALID", env_int("SLURM_LOCALID", -1), "local rank", e.local_rank);
    }
  }
  // No CUDA runtime here: the visible GPUs are what CUDA_VISIBLE_DEVICES lists (make_communicator
  // counts the real devices and sets the device it uses).
  e.use_gpu = use_gpu;
  int gpus = 0;
  if (use_gpu && has_env("CUDA_VISIBLE_DEVICES")) {
    std::string v = std::getenv("CUDA_VISIBLE_DEVICES");
    gpus = v.empty() ? 0 : 1 + int(std::count(v.begin(), v.end(), ','));
  }
  if (gpus > 0) e.device = "cuda:" + std::to_string(e.local_rank % gpus);
  return e;
}

std::string topology_table(MPI_Comm world, const Environment& e) {
  std::ostringstream line;
  line << e.rank << "\t" << e.hostname << "\t" << e.node_rank << "\t" << e.local_rank << "/" << e.local_size << "\t"
       << e.device << "\t" << e.pid;
  std::string mine = line.str();
  int len = int(mine.size());
  std::vector<int> lens(size_t(e.world_size)), displs(size_t(e.world_size));
  MPI_Gather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, 0, world);
  int total = 0;
  for (int r = 0; r < e.world_size; ++r) {
    displs[size_t(r)] = total;
    total += lens[size_t(r)];
  }
  std::string all(size_t(e.rank == 0 ? total : 0), '\0');
  MPI_Gatherv(mine.data(), len, MPI_CHAR, all.data(), lens.data(), displs.data(), MPI_CHAR, 0, world);
  if (e.rank != 0) return {};
  std::ostringstream out;
  out << "rank\thost\tnode\tlocal\tdevice\tpid\n";
  for (int r = 0; r < e.world_size; ++r) out << all.substr(size_t(displs[size_t(r)]), size_t(lens[size_t(r)])) << "\n";
  return out.str();
}

}  // namespace mpitrain
