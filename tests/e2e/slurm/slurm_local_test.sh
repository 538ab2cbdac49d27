#!/usr/bin/env bash
# e2e on a real one-node Slurm cluster (slurm/local-cluster.sh): srun -n 2 --mpi=pmix SPMD,
# sbatch of slurm/train.sbatch, and slurm/driver.sbatch (a lone driver spawning its workers).
# Exit 77 (ctest: skipped, shown as such) with the reason when the cluster cannot start.
# Also: SIGUSR1 to a running train.sbatch job -> checkpoint, exit 75, requeue, resume, complete.
# Also: an 8-trial sweep as a job array (%2) completes and `collect` prints the same best config as
# the same sweep run in one allocation; ASHA across an array's tasks stops most divergent trials.
# Usage: slurm_local_test.sh <source dir> <e2e_launch_tests binary> <mpitrain-example-launch binary> <mpitrain-train>
#                            <mpitrain-sweep>
set -uo pipefail
SRC=$1 BIN=$2 EXAMPLE=$3 TRAIN=$4 SWEEP=$5
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

# 5. A sweep as a Slurm job array: 8 trials, 2 tasks at a time, against the same sweep in one allocation.
cat > "$work/seed.json" <<'J'
{"layer_1": {"choice": [32, 64, 128]}, "layer_2": {"choice": [64, 128, 256]},
 "lr": {"loguniform": [1e-4, 1e-1]}, "batch_size": {"choice": [32, 64, 128]}}
J
sweep_args=(--space "$work/seed.json" --num-samples 8 --metric val_loss --mode min --seed 5 --
            --dataset synthetic --limit-train-batches 4 --limit-val-batches 2 --epochs 2)
out=$(cd "$work" && timeout -k 5 60 "$SWEEP" submit --dir arr --array-parallelism 2 "${sweep_args[@]}" 2>&1)
echo "$out"
jid=$(grep -oE "array job [0-9]+" <<< "$out" | grep -oE "[0-9]+$")
for _ in $(seq 1 600); do squeue -h -j "$jid" 2>/dev/null | grep -q . || break; sleep 0.5; done
(cd "$work" && timeout -k 5 60 "$SWEEP" collect arr > collect.log 2>&1)
(cd "$work" && timeout -k 5 300 "$SWEEP" run --dir inalloc --slots 2 "${sweep_args[@]}" > inalloc.log 2>&1)
best_arr=$(grep '^Best config' "$work/collect.log"); best_in=$(grep '^Best config' "$work/inalloc.log")
check "array sweep of 8 trials (%2): $(grep -c ',finished,' "$work/arr/results.csv" 2>/dev/null) finished; $best_arr" \
  '[[ -n $jid && $(grep -c ",finished," "$work/arr/results.csv") -eq 8 && -n $best_arr && $best_arr == "$best_in" ]]'
[[ $fail -eq 0 ]] || { cat "$work/collect.log" "$work/inalloc.log"; tail -5 "$work"/arr/slurm-*.out; }

# 6. ASHA across the array's tasks (rung records in the shared directory) on learning rates of which
#    some diverge: most divergent trials stop before max_t, and fewer trial-epochs than max_t x trials.
cat > "$work/diverge.json" <<'J'
{"lr": {"loguniform": [1e-3, 30]}, "momentum": 0.9, "layer_1": 64, "layer_2": 64}
J
out=$(cd "$work" && timeout -k 5 60 "$SWEEP" submit --dir asha --array-parallelism 2 --space diverge.json --num-samples 12 \
      --metric val_loss --seed 3 --scheduler asha --max-t 4 --grace-period 1 --reduction-factor 2 -- \
      --limit-train-batches 15 --limit-val-batches 4 --batch-size 64 --allow-nonfinite-loss 2>&1)
jid=$(grep -oE "array job [0-9]+" <<< "$out" | grep -oE "[0-9]+$")
for _ in $(seq 1 900); do squeue -h -j "$jid" 2>/dev/null | grep -q . || break; sleep 0.5; done
(cd "$work" && timeout -k 5 60 "$SWEEP" collect asha > asha.log 2>&1)
verdict=$(/usr/bin/python3 - "$work/asha/results.json" <<'PY'
import json, math, sys
rs = json.load(open(sys.argv[1]))
v = lambda r: r["last"].get("val_loss") if isinstance(r["last"].get("val_loss"), (int, float)) else math.nan
div = [r for r in rs if not math.isfinite(v(r)) or v(r) > 2.4]
early = [r for r in div if r["status"] == "stopped"]
epochs = sum(r["iterations"] for r in rs)
print(f"{len(early)} of {len(div)} divergent stopped early, {epochs} of {4 * len(rs)} trial-epochs, "
      f"{sum(r['status'] in ('finished', 'stopped') for r in rs)} of {len(rs)} done")
sys.exit(0 if div and 2 * len(early) >= len(div) and epochs < 4 * len(rs) and all(r["status"] in ("finished", "stopped") for r in rs) else 1)
PY
); rc=$?
check "ASHA across an array: $verdict" '[[ $rc -eq 0 ]]'
[[ $rc -eq 0 ]] || { cat "$work/asha.log"; tail -5 "$work"/asha/slurm-*.out; }
rm -rf "$work"
exit $fail
