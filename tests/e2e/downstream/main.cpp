// Links against an installed mpitrain and runs one allreduce (a singleton MPI world).
#include <mpi.h>

#include <cstdio>

#include "mpitrain/comm/mpi_communicator.hpp"
#include "mpitrain/version.hpp"

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int ok = 0;
  {
    mpitrain::MpiCommunicator comm(MPI_COMM_WORLD);
    float x[3] = {1, 2, 3};
    comm.allreduce(x, x, 3, mpitrain::DType::Float32, mpitrain::ReduceOp::Sum);
    ok = x[2] == 3.0f * float(comm.size());
    std::printf("downstream: mpitrain %s, %d rank(s), allreduce %s\n", MPITRAIN_VERSION, comm.size(), ok ? "ok" : "WRONG");
  }
  MPI_Finalize();
  return ok ? 0 : 1;
}
