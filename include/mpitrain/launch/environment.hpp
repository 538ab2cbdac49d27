// Where this process sits in the job: role, ranks, node, device (DESIGN §1).
#pragma once
#include <mpi.h>

#include <string>
#include <vector>

namespace mpitrain {

enum class Role {
  Driver,  ///< started alone; never initialises MPI; launches jobs of workers
  Leader,  ///< MPI singleton started by a driver; spawns the workers of one job
  Worker,  ///< spawned by a leader; serves one task and exits
  Spmd,    ///< started by mpirun / srun: every rank is a worker, the launcher's world is the job
};
const char* role_name(Role r);

struct Environment {
  Role role = Role::Driver;
  int rank = 0, world_size = 1;
  int local_rank = 0, local_size = 1;  ///< among the ranks of this node
  int node_rank = 0, num_nodes = 1;
  std::string hostname;
  bool use_gpu = false;         ///< the task asked for GPUs (ScalingConfig::use_gpu)
  std::string device = "cpu";  ///< "cuda:<local_rank % visible GPUs>" when GPUs are used, else "cpu"
  int pid = 0;
};

/// Collective over `world`: ranks from MPI (MPI_Comm_split_type SHARED for the node), checked
/// against OMPI_COMM_WORLD_* and SLURM_* variables when those describe this world. Throws
/// ConfigError naming the variable that disagrees.
Environment detect_environment(MPI_Comm world, Role role, bool use_gpu = false);

/// Collective: the rank -> host -> local rank -> device table, as text (meaningful on rank 0).
std::string topology_table(MPI_Comm world, const Environment& env);

/// Role implied by this process's environment and arguments, without initialising MPI.
Role detect_role(int argc, char** argv);

}  // namespace mpitrain
