// Runtime: construct it first thing in main(). It detects the process's role (DESIGN §1):
//  - driver (started alone): no MPI; launch() starts jobs of spawned workers;
//  - worker (spawned by a job's leader): the constructor serves the task and exits the process,
//    so user code after it never runs there;
//  - SPMD (mpirun / srun): MPI is initialised; launch() runs the entry point in place.
// `--mpitrain-print-topology` (or MPITRAIN_PRINT_TOPOLOGY=1) prints the rank -> host -> local
// rank -> device table from rank 0.
#pragma once
#include "mpitrain/launch/environment.hpp"

namespace mpitrain {

class Runtime {
 public:
  Runtime(int& argc, char**& argv);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  Role role() const { return env_.role; }
  const Environment& env() const { return env_; }
  /// The Runtime of this process, or nullptr before one is constructed.
  static Runtime* current();
  /// --mpitrain-print-topology was given (spawned workers print theirs too).
  bool print_topology() const { return print_topology_; }

 private:
  Environment env_;
  bool owns_mpi_ = false;
  bool print_topology_ = false;
};

}  // namespace mpitrain
