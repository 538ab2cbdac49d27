#!/usr/bin/env bash
# e2e for mpitrain-train --strategy sharded (ZeRO stages 1 and 2): checkpoints are world-size and
# strategy independent. Runs saved on 4 workers resume on 2 (stage 1 and 2; and 2 -> 4, and
# Sharded -> DDP) and end with the weights of DDP saved and resumed the same way (max |dw| <= 1e-5),
# and DDP -> Sharded; stage 2 with --precision bf16-mixed matches DDP with it; the sharded
# checkpoints pass mpitrain-ckpt verify and PyTorch's interop script loads them; bad input is one
# line and exit 2.
# Usage: sharded_cli_test.sh <mpitrain-train> <mpitrain-ckpt> <ckpt_forward> <dir of torch_interop.py>
set -uo pipefail
BIN=$(realpath "$1")
CKPT=$(realpath "$2")
FORWARD=$(realpath "$3")
INTEROP=$(realpath "$4")/torch_interop.py
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail=0
tiny=(--dataset synthetic --limit-train-batches 6 --limit-val-batches 2 --no-progress --lr 0.01 --oversubscribe
      --checkpoint-every-n-epochs 1)

# run <dir> <workers> <epochs> <strategy> [extra...]: one leg of a saved-and-resumed run
run() {
  local dir=$1 workers=$2 epochs=$3 strategy=$4; shift 4
  timeout -k 5 60 "$BIN" "${tiny[@]}" --optimizer adam --workers "$workers" --epochs "$epochs" --strategy "$strategy" \
    --output-dir "$dir" "$@" >> "$dir.log" 2>&1
  local rc=$?
  if [[ $rc -ne 0 ]]; then echo "FAIL: $dir: $strategy on $workers workers, $epochs epochs -> exit $rc"; cat "$dir.log"; fail=1; fi
}
# max_dw <a.h5> <b.h5>: the largest weight difference between two checkpoints' /model
max_dw() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
names = []
a["model"].visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
assert names, "no /model datasets"
print(max(float(np.max(np.abs(a["model"][n][()] - b["model"][n][()]))) for n in names))
PY
}
latest() { echo "$1/checkpoints/$(cat "$1/checkpoints/latest")"; }
compare() {  # compare <label> <dir> <reference dir>
  local d
  d=$(max_dw "$(latest "$2")" "$(latest "$3")") || { echo "FAIL: $1: cannot compare checkpoints"; fail=1; return; }
  if /usr/bin/python3 -c "import sys; sys.exit(0 if $d <= 1e-5 else 1)"; then echo "ok: $1: max |dw| vs DDP = $d"
  else echo "FAIL: $1: max |dw| vs DDP = $d (> 1e-5)"; fail=1; fi
}

# 4 -> 2 workers, Sharded and the DDP reference.
run ddp42 4 1 ddp && run ddp42 2 2 ddp --resume latest
run sh42 4 1 sharded && run sh42 2 2 sharded --resume latest
compare "sharded 4 -> 2" sh42 ddp42
# Stage 2, 4 -> 2 workers (and stage 2 -> stage 1 on the way back is the same checkpoint format).
run sh42s2 4 1 sharded --sharded-stage 2 && run sh42s2 2 2 sharded --sharded-stage 2 --resume latest
compare "sharded stage 2, 4 -> 2" sh42s2 ddp42
# 2 -> 4 workers.
run ddp24 2 1 ddp && run ddp24 4 2 ddp --resume latest
run sh24 2 1 sharded && run sh24 4 2 sharded --resume latest
compare "sharded 2 -> 4" sh24 ddp24
# Sharded on 2 -> DDP on 2 (against DDP -> DDP on 2).
run ddp22 2 1 ddp && run ddp22 2 2 ddp --resume latest
run sh22 2 1 sharded && run sh22 2 2 ddp --resume latest
compare "sharded -> ddp" sh22 ddp22
# DDP on 2 -> Sharded on 2.
run dsh22 2 1 ddp && run dsh22 2 2 sharded --resume latest
compare "ddp -> sharded" dsh22 ddp22
# bf16-mixed (autocast) under stage 2 against DDP under it.
run ddpbf 2 1 ddp --precision bf16-mixed
run sh2bf 2 1 sharded --sharded-stage 2 --precision bf16-mixed
compare "sharded stage 2, bf16-mixed" sh2bf ddpbf
# Every sharded checkpoint verifies (digests, chunk index) like any other.
for f in sh42/checkpoints/*.h5 sh24/checkpoints/*.h5 sh42s2/checkpoints/*.h5; do
  if timeout -k 5 30 "$CKPT" verify "$f" > verify.log 2>&1; then :; else echo "FAIL: mpitrain-ckpt verify $f"; cat verify.log; fail=1; fi
done
echo "ok: mpitrain-ckpt verify on $(ls sh42/checkpoints/*.h5 sh24/checkpoints/*.h5 sh42s2/checkpoints/*.h5 | wc -l) sharded checkpoints"
# PyTorch loads a stage 1 and a stage 2 checkpoint into its own MLP and gets mpitrain's logits.
for d in sh42 sh42s2; do
  if "$FORWARD" "$(latest $d)" fwd_$d.h5 16 > fwd.log 2>&1 && /usr/bin/python3 "$INTEROP" "$(latest $d)" fwd_$d.h5 >> fwd.log 2>&1
  then echo "ok: PyTorch interop on $(latest $d)"; else echo "FAIL: PyTorch interop on $(latest $d)"; cat fwd.log; fail=1; fi
done

# Bad input: one line, exit 2.
expect2() {  # expect2 <text in the message> args...
  local want=$1; shift
  local err rc
  err=$(timeout -k 5 60 "$BIN" "${tiny[@]}" --workers 2 --epochs 1 "$@" 2>&1 >/dev/null); rc=$?
  local line
  line=$(printf '%s\n' "$err" | grep '^mpitrain-train:')
  if [[ $rc -eq 2 && $(printf '%s\n' "$line" | grep -c .) -eq 1 && $line == *"$want"* ]]; then echo "ok: $* -> $line"
  else echo "FAIL: $* -> exit $rc (want 2 and one line with '$want'): $err"; fail=1; fi
}
expect2 "stage must be 1" --strategy sharded --sharded-stage 3 --output-dir bad1
expect2 "stage must be 1" --strategy sharded --sharded-stage 0 --output-dir bad2
expect2 "applies to --strategy sharded" --strategy ddp --sharded-stage 1 --output-dir bad4
# A Sharded (Adam) checkpoint resumed by a run whose optimizer is SGD.
expect2 "adam state, the run uses sgd" --strategy sharded --output-dir sh42 --resume latest --optimizer sgd
exit $fail
