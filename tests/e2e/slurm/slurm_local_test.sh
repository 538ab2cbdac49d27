#!/usr/bin/env bash
# e2e on a real one-node Slurm cluster (slurm/local-cluster.sh): srun -n 2 --mpi=pmix SPMD,
# sbatch of slurm/train.sbatch, and slurm/driver.sbatch (a lone driver spawning its workers).
# Exit 77 (ctest: skipped, shown as such) with the reason when the cluster cannot start.
# Also: SIGUSR1 to a running train.sbatch job -> checkpoint, exit 75, requeue, resume, complete.
# Usage: slurm_local_test.sh <source dir> <e2e_launch_tests binary> <mpitrain-example-launch binary> <mpitrain-train>
set -uo pipefail
SRC=$1 BIN=$2 EXAMPLE=$3 TRAIN=$4
export MPITRAIN_SLURM_DIR=$(mktemp -d /tmp/mpitrain-slurm-test.XXXXXX)
export MPITRAIN_SLURM_CTLD_PORT=${MPITRAIN_SLURM_CTLD_PORT:-6837} MPITRAIN_SLURM_D_PORT=${MPITRAIN_SLURM_D_PORT:-6838}
export SLURM_CONF=$MPITRAIN_SLURM_DIR/slurm.conf
cleanup() { "$SRC/slurm/local-cluster.sh" stop >/dev/null 2>&1; rm -rf "$MPITRAIN_SLURM_DIR"; }
trap cleanup EXIT
if ! out=$("$SRC/slurm/local-cluster.sh" start 2>&1); then
  echo "SKIP: the local Slurm cluster could not start:"; echo "$out"; tail -5 "$MPITRAIN_SLURM_DIR"/log/*.log 2>/dev/null
  exit 77
fi
fail=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi; }

# wait_job <id>: until it leaves the queue (bounded), then its state
wait_job() {
  for _ in $(seq 1 240); do squeue -h -j "$1" 2>/dev/null | grep -q . || break; sleep 0.5; done
  scontrol show job "$1" 2>/dev/null | grep -oE "JobState=[A-Z_]+" | head -1
}

# 1. srun SPMD: the same program and the same answer as under spawn and mpirun
out=$(timeout -k 5 120 srun -n 2 --mpi=pmix "$BIN" 2>&1); rc=$?
echo "$out" | grep -E "spmd result|PASSED|FAILED" | head -5
check "srun -n 2 --mpi=pmix runs SPMD" '[[ $rc -eq 0 && $out == *"spmd result: {\"sum\":2.5,\"world\":2}"* ]]'

# 1b. spawn requested under srun: one line naming PMIx, exit 2 on every task
out=$(timeout -k 5 60 srun -n 2 --mpi=pmix "$EXAMPLE" --spawn 2>&1); rc=$?
echo "$out"
check "spawn under srun refused" '[[ $rc -ne 0 && $(grep -c "Slurm.s PMIx cannot MPI_Comm_spawn" <<< "$out") -ge 1 ]]'

# 2. sbatch train.sbatch (srun inside)
work=$(mktemp -d)
jid=$(cd "$work" && sbatch --parsable -n 2 "$SRC/slurm/train.sbatch" "$BIN")
state=$(wait_job "$jid")
check "sbatch train.sbatch: $state" '[[ $state == JobState=COMPLETED ]] && grep -q "spmd result: {\"sum\":2.5,\"world\":2}" "$work/mpitrain-$jid.out"'
[[ $fail -eq 0 ]] || cat "$work/mpitrain-$jid.out"

# 3. sbatch driver.sbatch: a lone driver inside the allocation, spawning 2 workers twice
jid=$(cd "$work" && sbatch --parsable -c 4 "$SRC/slurm/driver.sbatch" "$BIN" --gtest_filter=Driver.TwoLaunches*)
state=$(wait_job "$jid")
check "sbatch driver.sbatch: $state" '[[ $state == JobState=COMPLETED ]] && grep -q "\[  PASSED  \] 1 test" "$work/mpitrain-$jid.out"'
[[ $fail -eq 0 ]] || cat "$work/mpitrain-$jid.out"

# 4. Preemption: SIGUSR1 (what --signal=USR1@60 sends before the time limit) to the running job's
#    ranks -> every rank checkpoints and exits 75 -> train.sbatch requeues -> the rerun resumes.
jid=$(cd "$work" && sbatch --parsable -n 2 "$SRC/slurm/train.sbatch" "$TRAIN" --dataset synthetic --epochs 12 \
      --no-progress --output-dir run --resume auto)
for _ in $(seq 1 600); do [[ -f $work/run/checkpoints/latest ]] && break; sleep 0.1; done
scancel --signal=USR1 "$jid"
for _ in $(seq 1 600); do grep -q "requeueing job" "$work/mpitrain-$jid.out" 2>/dev/null && break; sleep 0.2; done
# Slurm holds a requeued job for ~2 minutes (BeginTime) against restart loops; the test moves it up.
# Not within the second of the requeue: slurmd revoked the first run's credential, and it compares
# creation times in whole seconds ("Job credential revoked").
for _ in $(seq 1 300); do
  squeue -h -j "$jid" -o %r 2>/dev/null | grep -q BeginTime && [[ $(sinfo -h -o %t) == idle ]] && break; sleep 0.1
done
sleep 2
scontrol update jobid="$jid" StartTime=now
state=$(wait_job "$jid")
restarts=$(scontrol show job "$jid" 2>/dev/null | grep -oE "Restarts=[0-9]+")
log=$work/mpitrain-$jid.out
check "SIGUSR1 -> checkpoint, requeue, resume: $state $restarts" '[[ $state == JobState=COMPLETED && $restarts == Restarts=1 ]] &&
  grep -q "stopped by signal 10" "$log" && grep -q "resuming from run/checkpoints/" "$log" && grep -q "\"steps\":564.0" "$log"'
[[ $fail -eq 0 ]] || cat "$log"
rm -rf "$work"
exit $fail
