# Source me: Open MPI 4.1 as root on a small box, oversubscription allowed, TCP on loopback only
# (tests must never send traffic to any other address). Same settings as shared/recipes/mpi-root-env.sh.
export OMPI_ALLOW_RUN_AS_ROOT=1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl_tcp_if_include=lo
export OMPI_MCA_oob_tcp_if_include=lo

