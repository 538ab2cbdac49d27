#!/usr/bin/env bash
# e2e: the TensorBoard logger's event file, read back with TensorBoard's own reader (the
# `tensorboard` package from PyPI, in the venv scripts/setup makes). Exit 77 (skipped) without it.
# Usage: tensorboard_test.sh <mpitrain-train> <python with tensorboard>
set -uo pipefail
BIN=$1 PY=$2
if ! "$PY" -c "import tensorboard" 2>/dev/null; then
  echo "SKIP: no tensorboard package in $PY (scripts/setup installs it from PyPI)"; exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
timeout -k 5 300 "$BIN" --dataset synthetic --workers 2 --epochs 2 --limit-train-batches 20 --log-every-n-steps 5 \
  --loggers csv,tensorboard --output-dir "$work/logs" --no-progress --summary-json "$work/s.json" > "$work/log" 2>&1 || { cat "$work/log"; exit 1; }
"$PY" - "$work" <<'PY'
import glob, json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
work = sys.argv[1]
files = glob.glob(f"{work}/logs/tensorboard/events.out.tfevents.*")
assert len(files) == 1, files
acc = EventAccumulator(files[0]); acc.Reload()
tags = acc.Tags()["scalars"]
print("scalar tags:", sorted(tags))
for t in ("train_loss", "train_loss_epoch", "val_acc", "val_loss", "epoch"):
    assert t in tags, f"missing {t}"
steps = [e.step for e in acc.Scalars("train_loss")]
assert steps == [5, 10, 15, 20, 25, 30, 35, 40], steps            # every 5 of 40 optimizer steps
summary = json.load(open(f"{work}/s.json"))
last_val = acc.Scalars("val_acc")[-1]
assert abs(last_val.value - summary["val_acc"]) < 1e-6, (last_val.value, summary["val_acc"])
assert [e.step for e in acc.Scalars("epoch")] == [20, 40]
print("ok: TensorBoard reads", len(steps), "train_loss points; last val_acc", last_val.value)
PY
