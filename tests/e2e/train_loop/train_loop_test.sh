#!/usr/bin/env bash
# e2e for hand-written training loops (issue 17): FunctionTrainer's checks (parity with Trainer +
# DDP, a SIGKILLed worker relaunched from its last reported checkpoint, retention), spawn-style and
# under mpirun -n 2; both examples spawn-style and under mpirun -n 2 (the MLP reaches >= 85% test
# accuracy in 2 epochs); bad input is one line on stderr and exit 2.
# Usage: train_loop_test.sh <e2e_train_loop_checks> <dir of the example binaries>
set -uo pipefail
CHECKS=$(realpath "$1")
APPS=$(realpath "$2")
LINEAR=$APPS/mpitrain-example-train-loop-linear
MLP=$APPS/mpitrain-example-train-loop-fashion-mnist
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail=0
mpi=(timeout -k 5 300 mpirun -n 2 --oversubscribe)

# expect <label> <want rc> <log> <command...>: runs it, checks its exit code, shows the log on failure
expect() {
  local label=$1 want=$2 log=$3; shift 3
  "$@" > "$log" 2>&1
  local rc=$?
  if [[ $rc -eq $want ]]; then echo "ok: $label (exit $rc)"; else echo "FAIL: $label: exit $rc, want $want"; cat "$log"; fail=1; fi
  return 0
}
# metric <log> <name>: a metric of the printed Result (its first line "metrics={...}")
metric() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import json, re, sys
m = re.search(r"^\s*metrics=(\{.*\}),$", open(sys.argv[1]).read(), re.M)
print(json.loads(m.group(1))[sys.argv[2]] if m else "none")
PY
}

# 1. The library checks: each prints its own ok/FAIL lines.
expect "checks: parity (spawn)" 0 parity.log timeout -k 5 300 "$CHECKS" parity spawn-parity; grep -E "^(ok|FAIL)" parity.log
expect "checks: failure + relaunch (spawn)" 0 failure.log timeout -k 5 300 "$CHECKS" failure spawn-failure; grep -E "^(ok|FAIL)" failure.log
expect "checks: retention (spawn)" 0 retention.log timeout -k 5 300 "$CHECKS" retention spawn-retention; grep -E "^(ok|FAIL)" retention.log
expect "checks: parity (mpirun -n 2)" 0 parity2.log "${mpi[@]}" "$CHECKS" parity spmd-parity; grep -E "^(ok|FAIL)" parity2.log
expect "checks: retention (mpirun -n 2)" 0 retention2.log "${mpi[@]}" "$CHECKS" retention spmd-retention

# 2. The toy linear model: a checkpoint every epoch, 5 epochs -> the latest is index 4.
for how in spawn mpirun; do
  launcher=(timeout -k 5 120); [[ $how == mpirun ]] && launcher=("${mpi[@]}")
  expect "linear example ($how)" 0 "linear-$how.log" "${launcher[@]}" "$LINEAR" --storage-path "$work/res" --name "linear-$how"
  if grep -q "checkpoint=Checkpoint(path=$work/res/linear-$how/checkpoint_000004.h5, index=4" "linear-$how.log" &&
     [[ -f $work/res/linear-$how/checkpoint_000004.h5 ]]; then echo "ok: linear ($how): 5 reports, latest checkpoint index 4"
  else echo "FAIL: linear ($how): no checkpoint index 4"; cat "linear-$how.log"; fail=1; fi
done
# --resume-from an earlier run's checkpoint: get_checkpoint() returns it, training goes on at epoch 5.
expect "linear example resumed from a checkpoint" 0 resume.log timeout -k 5 120 "$LINEAR" --storage-path "$work/res" \
  --name linear-resumed --epochs 7 --resume-from "$work/res/linear-spawn/checkpoint_000004.h5"
e=$(metric resume.log epoch)
if [[ $e == 6.0 || $e == 6 ]] && grep -q "checkpoint=Checkpoint(path=$work/res/linear-resumed/checkpoint_000001.h5, index=1" resume.log &&
   [[ ! -e $work/res/linear-resumed/checkpoint_000002.h5 ]]; then echo "ok: resumed run reports epochs 5 and 6 only"
else echo "FAIL: resumed run: last epoch $e"; cat resume.log; fail=1; fi

# 3. The Fashion-MNIST MLP: >= 85% test accuracy in 2 epochs, spawn-style and under mpirun.
if [[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]]; then
  for how in spawn mpirun; do
    launcher=(timeout -k 5 600); [[ $how == mpirun ]] && launcher=(timeout -k 5 600 mpirun -n 2 --oversubscribe)
    start=$(date +%s)
    expect "fashion-mnist MLP ($how)" 0 "mlp-$how.log" "${launcher[@]}" "$MLP" --storage-path "$work/res" --name "mlp-$how"
    acc=$(metric "mlp-$how.log" accuracy)
    echo "fashion-mnist MLP ($how), 2 workers, 2 epochs: test accuracy $acc, $(( $(date +%s) - start )) s"
    /usr/bin/python3 -c "import sys; sys.exit(0 if float('$acc') >= 0.85 else 1)" 2>/dev/null ||
      { echo "FAIL: MLP ($how): accuracy $acc < 0.85"; cat "mlp-$how.log"; fail=1; }
  done
else
  echo "SKIP MLP accuracy: dataset-fashion-mnist not installed"
fi

# 4. Bad input: one line on stderr, exit 2 (and nothing written for a refused configuration).
bad() {  # bad <label> <expected text> <command...>
  local label=$1 text=$2; shift 2
  "$@" > bad.out 2> bad.err
  local rc=$? lines
  # mpirun's own report of a non-zero exit comes between lines of dashes: not the program's.
  awk '/^-+$/ {inside = !inside; next} !inside' bad.err > bad.own && mv bad.own bad.err
  lines=$(grep -c . bad.err)
  if [[ $rc -eq 2 && $lines -eq 1 ]] && grep -q -- "$text" bad.err; then echo "ok: $label: exit 2, one line: $(cat bad.err)"
  else echo "FAIL: $label: exit $rc, $lines stderr lines (want 2, 1 with '$text')"; cat bad.out bad.err; fail=1; fi
}
bad "unknown function" "unknown training function 'nope'" timeout -k 5 60 "$LINEAR" --function nope --storage-path "$work/bad"
bad "num_to_keep 0" "num_to_keep must be at least 1" timeout -k 5 60 "$LINEAR" --num-to-keep 0 --storage-path "$work/bad"
bad "metric never reported" "'val_loss' was not reported" timeout -k 5 60 "$LINEAR" --score-attribute val_loss \
  --storage-path "$work/bad" --name never
bad "metric never reported (mpirun -n 2)" "'val_loss' was not reported" "${mpi[@]}" "$LINEAR" --score-attribute val_loss \
  --storage-path "$work/bad" --name never-spmd
bad "score order" "checkpoint_score_order" timeout -k 5 60 "$LINEAR" --score-order up --storage-path "$work/bad"
bad "run name taken" "linear-spawn" timeout -k 5 60 "$LINEAR" --storage-path "$work/res" --name linear-spawn
bad "unknown flag" "unrecognised\|unrecognized" timeout -k 5 60 "$LINEAR" --bogus
bad "missing --resume-from file" "nowhere.h5" timeout -k 5 60 "$LINEAR" --storage-path "$work/bad" --resume-from "$work/nowhere.h5"
if [[ -e $work/bad/never/checkpoint_000000.h5 ]]; then echo "FAIL: a checkpoint was written for a refused metric"; fail=1; fi

exit $fail
