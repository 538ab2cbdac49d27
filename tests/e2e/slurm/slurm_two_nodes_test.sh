#!/usr/bin/env bash
# e2e across two simulated hosts (slurm/two-node-cluster.sh: two network namespaces on a private
# bridge, real TCP between them): the Communicator tests with 2 ranks on each node (cross-node
# path of every collective), and slurm/multinode.sbatch. Exit 77 (skipped) if it cannot start.
# Usage: slurm_two_nodes_test.sh <source dir> <mpi_comm_tests binary>
set -uo pipefail
SRC=$1 BIN=$2
export ST_DIR=$(mktemp -d /tmp/mpitrain-2n-test.XXXXXX)
export SLURM_CONF=$ST_DIR/slurm.conf
cleanup() { "$SRC/slurm/two-node-cluster.sh" stop >/dev/null 2>&1; rm -rf "$ST_DIR"; }
trap cleanup EXIT
if ! out=$("$SRC/slurm/two-node-cluster.sh" start 2>&1); then
  echo "SKIP: the two-node Slurm cluster could not start:"; echo "$out"
  exit 77
fi
# MPI between the simulated hosts goes over their private bridge only.
export OMPI_MCA_btl_tcp_if_include=10.199.0.0/24 OMPI_MCA_oob_tcp_if_include=10.199.0.0/24
fail=0
out=$(timeout -k 5 600 srun -N 2 --ntasks-per-node=2 --mpi=pmix "$BIN" 2>&1); rc=$?
echo "$out" | grep -E "PASSED|FAILED|Failure" | head -20
# Every test of the binary must have run and passed (the count follows the binary, not this script).
# Tests that need every rank on one node skip themselves here (GTEST_SKIP), and are counted so.
want=$(timeout -k 5 60 "$BIN" --gtest_list_tests | grep -c '^  ')
skipped=$(echo "$out" | grep -oE '^\[  SKIPPED \] [0-9]+ tests?,' | grep -oE '[0-9]+' | head -1)
want=$((want - ${skipped:-0}))
if [[ $rc -eq 0 && $want -gt 0 && $out == *"[  PASSED  ] $want tests."* ]]; then echo "ok: srun -N 2 --ntasks-per-node=2 comm tests"; else echo "FAIL: comm tests across nodes (exit $rc)"; fail=1; fi

work=$(mktemp -d)
jid=$(cd "$work" && sbatch --parsable "$SRC/slurm/multinode.sbatch" "$BIN" --gtest_filter=Collectives.*)
for _ in $(seq 1 600); do squeue -h -j "$jid" 2>/dev/null | grep -q . || break; sleep 0.5; done
state=$(scontrol show job "$jid" 2>/dev/null | grep -oE "JobState=[A-Z_]+" | head -1)
if [[ $state == JobState=COMPLETED ]] && grep -q "PASSED" "$work/mpitrain-$jid.out"; then echo "ok: multinode.sbatch $state"
else echo "FAIL: multinode.sbatch $state"; cat "$work/mpitrain-$jid.out"; fail=1; fi
rm -rf "$work"
exit $fail
