#!/usr/bin/env bash
# e2e for mpitrain-train --strategy horovod: spawned workers (--workers, --grad-compression,
# --num-hosts x --num-slots), SPMD under mpirun (and a hosts x slots shape that disagrees with the
# world), checkpoint + --resume latest, and bad input (one line, exit 2).
# Usage: horovod_cli_test.sh <mpitrain-train>
set -uo pipefail
BIN=$(realpath "$1")  # the script works in a temp dir
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail=0
json() { /usr/bin/python3 -c "import json,sys; print(json.load(open('$1'))['$2'])"; }
# finite_metrics <summary.json>: train_loss and val_loss present and finite, steps > 0
finite_metrics() {
  /usr/bin/python3 - "$1" <<'PY'
import json, math, sys
s = json.load(open(sys.argv[1]))
bad = [k for k in ("train_loss", "val_loss") if not isinstance(s.get(k), (int, float)) or not math.isfinite(s[k])]
sys.exit(1 if bad or not s.get("steps", 0) > 0 else 0)
PY
}
tiny=(--strategy horovod --dataset synthetic --limit-train-batches 8 --limit-val-batches 2 --no-progress)

# 1-2. Spawn mode: 2 workers train 2 epochs and write a summary with finite metrics, also with fp16
#      gradients on the wire and with --num-hosts 1 --num-slots 2 instead of --workers.
spawn() {  # spawn <name> args...
  local name=$1; shift
  timeout -k 5 40 "$BIN" "${tiny[@]}" --epochs 2 --summary-json "$name.json" "$@" > "$name.log" 2>&1; local rc=$?
  if [[ $rc -eq 0 && -f $name.json ]] && finite_metrics "$name.json" && [[ $(json "$name.json" workers) == 2 &&
        $(json "$name.json" epochs) == 2.0 ]]; then
    echo "ok: horovod $* -> train_loss $(json "$name.json" train_loss), val_loss $(json "$name.json" val_loss)"
  else
    echo "FAIL: horovod $* -> exit $rc"; cat "$name.log"; [[ -f $name.json ]] && cat "$name.json"; fail=1
  fi
}
spawn plain --workers 2
spawn fp16 --workers 2 --grad-compression fp16
spawn shape --num-hosts 1 --num-slots 2
# fp16 on the wire rounds the gradients: a different (still finite) result; 1 host x 2 slots is
# the same job as --workers 2: the same seed gives the same val_loss exactly.
a=$(json plain.json val_loss 2>/dev/null); b=$(json fp16.json val_loss 2>/dev/null); c=$(json shape.json val_loss 2>/dev/null)
if [[ -n $a && -n $b && $a != "$b" ]]; then echo "ok: fp16 compression changes val_loss ($a -> $b)"
else echo "FAIL: --grad-compression fp16 val_loss '$b' vs none '$a' (want both, different)"; fail=1; fi
if [[ -n $a && $a == "$c" ]]; then echo "ok: --num-hosts 1 --num-slots 2 == --workers 2 (val_loss $a)"
else echo "FAIL: --num-hosts 1 --num-slots 2 val_loss '$c' vs --workers 2 '$a'"; fail=1; fi

# 3. SPMD under mpirun, 2 ranks: trains and exits 0; --num-hosts 1 --num-slots 3 disagrees with the
#    world of 2: exit 2 on every rank, one line from rank 0 naming num_hosts and the world.
timeout -k 5 40 mpirun -n 2 --oversubscribe "$BIN" "${tiny[@]}" --epochs 1 --summary-json spmd.json > spmd.log 2>&1; rc=$?
if [[ $rc -eq 0 && -f spmd.json ]] && finite_metrics spmd.json && [[ $(json spmd.json workers) == 2 ]]; then
  echo "ok: mpirun -n 2 horovod -> val_loss $(json spmd.json val_loss)"
else echo "FAIL: mpirun -n 2 horovod -> exit $rc"; cat spmd.log; fail=1; fi
err=$(timeout -k 5 40 mpirun -n 2 --oversubscribe sh -c \
  '"$0" "$@" >/dev/null; echo "rank $OMPI_COMM_WORLD_RANK exit $?" >&2' "$BIN" "${tiny[@]}" --num-hosts 1 --num-slots 3 2>&1)
line=$(printf '%s\n' "$err" | grep '^mpitrain-train:')
if [[ $(printf '%s\n' "$line" | grep -c .) -eq 1 && $line == *num_hosts* && $line == *world* &&
      $err == *"rank 0 exit 2"* && $err == *"rank 1 exit 2"* ]]; then echo "ok: mpirun -n 2 --num-hosts 1 --num-slots 3 -> $line"
else echo "FAIL: mpirun -n 2 --num-hosts 1 --num-slots 3 -> $err (want exit 2 on both ranks, one line naming num_hosts and world)"; fail=1; fi
err=$(timeout -k 5 40 mpirun -n 2 --oversubscribe "$BIN" "${tiny[@]}" --num-hosts 1 --num-slots 3 2>&1 >/dev/null); rc=$?
[[ $rc -eq 2 ]] && echo "ok: mpirun itself exits 2" || { echo "FAIL: mpirun exit $rc (want 2): $err"; fail=1; }

# 4. Checkpoint + resume: 1 epoch with an epoch-end checkpoint, then --epochs 2 --resume latest
#    continues from it and reports 2 epochs.
timeout -k 5 40 "$BIN" "${tiny[@]}" --workers 2 --epochs 1 --checkpoint-every-n-epochs 1 --output-dir run > ck1.log 2>&1; rc=$?
if [[ $rc -eq 0 && -s run/checkpoints/latest ]]; then echo "ok: epoch-1 checkpoint $(cat run/checkpoints/latest)"
else echo "FAIL: checkpointing horovod run -> exit $rc"; cat ck1.log; ls -R run 2>/dev/null; fail=1; fi
timeout -k 5 40 "$BIN" "${tiny[@]}" --workers 2 --epochs 2 --checkpoint-every-n-epochs 1 --output-dir run --resume latest \
  --summary-json resume.json > ck2.log 2>&1; rc=$?
if [[ $rc -eq 0 && -f resume.json ]] && grep -q "resuming from run/checkpoints/" ck2.log && finite_metrics resume.json &&
   [[ $(json resume.json epochs) == 2.0 ]]; then echo "ok: --resume latest -> $(grep -m1 'resuming from' ck2.log), epochs $(json resume.json epochs)"
else echo "FAIL: horovod --resume latest -> exit $rc"; cat ck2.log; [[ -f resume.json ]] && cat resume.json; fail=1; fi

# 5. Bad input: one line naming the problem, exit 2
expect() {  # expect <text> -- args...
  local want=$1; shift 2
  local err rc
  err=$(timeout -k 5 40 "$BIN" "$@" 2>&1 >/dev/null); rc=$?
  if [[ $rc -ne 2 || $err != *"$want"* || $(printf '%s\n' "$err" | grep -c .) -ne 1 ]]; then
    echo "FAIL: $* -> exit $rc: $err (want exit 2 and one line with '$want')"; fail=1
  else echo "ok: $* -> $err"; fi
}
expect "unknown gradient compression 'fp8' (expected none, fp16 or bf16)" -- "${tiny[@]}" --grad-compression fp8
expect "apply to --strategy horovod (not 'ddp')" -- --dataset synthetic --strategy ddp --grad-compression fp16
expect "--num-hosts and --num-slots go together" -- "${tiny[@]}" --num-hosts 2
expect "--workers 3 disagrees with --num-hosts x --num-slots = 1 x 2" -- "${tiny[@]}" --num-hosts 1 --num-slots 2 --workers 3
expect "--num-hosts and --num-slots must be at least 1 (got 0 x 2)" -- "${tiny[@]}" --num-hosts 0 --num-slots 2
exit $fail
