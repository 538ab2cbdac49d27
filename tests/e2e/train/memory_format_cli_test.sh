#!/usr/bin/env bash
# e2e for mpitrain-train --memory-format channels_last (NHWC weights and batches): checkpoints do
# not depend on the layout. A LeNet run saved channels-last and resumed contiguous (and the
# reverse) ends with the weights of an all-contiguous run (max |dw| <= 1e-4: NHWC and NCHW
# convolutions may sum in another order), under DDP and Horovod; rank 0 logs what it laid out; the checkpoint is PyTorch-readable
# (contiguous datasets); bad input is one line and exit 2 (an unknown format; Sharded, whose
# shards are flat ranges of contiguous parameters).
# Usage: memory_format_cli_test.sh <mpitrain-train>
set -uo pipefail
BIN=$(realpath "$1")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail=0
tiny=(--model lenet --dataset synthetic --limit-train-batches 6 --limit-val-batches 2 --no-progress --lr 0.02
      --oversubscribe --workers 2 --checkpoint-every-n-epochs 1)

run() {  # run <dir> <epochs> <format> [extra...]: one leg of a saved-and-resumed run
  local dir=$1 epochs=$2 format=$3; shift 3
  timeout -k 5 90 "$BIN" "${tiny[@]}" --epochs "$epochs" --memory-format "$format" --output-dir "$dir" "$@" >> "$dir.log" 2>&1
  local rc=$?
  if [[ $rc -ne 0 ]]; then echo "FAIL: $dir: $format, $epochs epochs $* -> exit $rc"; cat "$dir.log"; fail=1; fi
}
latest() { echo "$1/checkpoints/$(cat "$1/checkpoints/latest")"; }
compare() {  # compare <label> <dir> <reference dir>
  local d
  d=$(/usr/bin/python3 - "$(latest "$2")" "$(latest "$3")" <<'PY'
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
names = []
a["model"].visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
assert any(a["model"][n].ndim == 4 for n in names), "no convolution weights in /model"
print(max(float(np.max(np.abs(a["model"][n][()] - b["model"][n][()]))) for n in names))
PY
  ) || { echo "FAIL: $1: cannot compare checkpoints"; fail=1; return; }
  if /usr/bin/python3 -c "import sys; sys.exit(0 if $d <= 1e-4 else 1)"; then echo "ok: $1: max |dw| vs contiguous = $d"
  else echo "FAIL: $1: max |dw| vs contiguous = $d (> 1e-4)"; fail=1; fi
}

run ref 1 contiguous && run ref 2 contiguous --resume latest
run cl 1 channels_last && run cl 2 contiguous --resume latest
compare "ddp, channels_last -> contiguous" cl ref
# The layout did change: LeNet's c1.weight and c2.weight (the one-channel c1 gets NHWC strides too).
if grep -q "memory_format channels_last: 2 4-D parameters and buffers laid out NHWC" cl.log; then
  echo "ok: $(grep -o 'memory_format channels_last: .*NHWC' cl.log | head -1)"
else echo "FAIL: no 'memory_format channels_last: 2 ...' line in cl.log"; cat cl.log; fail=1; fi
run lc 1 contiguous && run lc 2 channels_last --resume latest
compare "ddp, contiguous -> channels_last" lc ref
run hvd 1 channels_last --strategy horovod && run hvd 2 channels_last --strategy horovod --resume latest
compare "horovod, channels_last" hvd ref
# What was written is plain NCHW: LeNet's second convolution weight reads as (out, in, kh, kw).
if /usr/bin/python3 -c "
import sys, h5py
w = h5py.File(sys.argv[1], 'r')['model/net.c2.weight']
sys.exit(0 if w.shape == (16, 6, 5, 5) else 1)" "$(latest cl)" 2>/dev/null
then echo "ok: channels-last checkpoint holds c2.weight as (16, 6, 5, 5)"
else echo "FAIL: c2.weight of $(latest cl) is not (16, 6, 5, 5)"; /usr/bin/python3 -c "
import sys, h5py; f = h5py.File(sys.argv[1], 'r'); f['model'].visititems(lambda n, o: print(n, getattr(o, 'shape', '')))" "$(latest cl)"; fail=1; fi

expect2() {  # expect2 <text in the message> args...: one line naming the cause, exit 2
  local want=$1; shift
  local err rc line
  err=$(timeout -k 5 60 "$BIN" "${tiny[@]}" --epochs 1 "$@" 2>&1 >/dev/null); rc=$?
  line=$(printf '%s\n' "$err" | grep '^mpitrain-train:')
  if [[ $rc -eq 2 && $(printf '%s\n' "$line" | grep -c .) -eq 1 && $line == *"$want"* ]]; then echo "ok: $* -> $line"
  else echo "FAIL: $* -> exit $rc (want 2 and one line with '$want'): $err"; fail=1; fi
}
expect2 'memory_format must be "contiguous" or "channels_last" (got "nhwc")' --memory-format nhwc --output-dir bad1
expect2 'use memory_format "contiguous" with this strategy' --memory-format channels_last --strategy sharded --output-dir bad2
exit $fail
