#!/usr/bin/env bash
# e2e for mpitrain-train: accuracy of the default MLP on Fashion-MNIST with 2 spawned workers,
# progress lines in a non-TTY log, --config with flags overriding it, and bad input (one line,
# exit 2). Usage: train_cli_test.sh <mpitrain-train>
set -uo pipefail
BIN=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail=0
json() { /usr/bin/python3 -c "import json,sys; print(json.load(open('$1'))['$2'])"; }

# 1. Accuracy: 2 workers, 2 epochs (Fashion-MNIST MLP baselines are ~87%)
if [[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]]; then
  timeout -k 5 600 "$BIN" --model mlp --workers 2 --epochs 2 --no-progress --summary-json acc.json > acc.log 2>&1 || { cat acc.log; fail=1; }
  acc=$(json acc.json test_accuracy 2>/dev/null || echo 0)
  echo "fashion-mnist mlp, 2 workers, 2 epochs: test accuracy $acc, $(json acc.json samples_per_s 2>/dev/null) samples/s"
  /usr/bin/python3 -c "import sys; sys.exit(0 if float('$acc') >= 0.85 else 1)" || { echo "FAIL: accuracy $acc < 0.85"; fail=1; }
else
  echo "SKIP accuracy check: dataset-fashion-mnist not installed"
fi

# 2. Progress on a non-TTY: one line every --log-every-n-steps (30 steps / 10 = 3 lines)
timeout -k 5 300 "$BIN" --dataset synthetic --workers 2 --limit-train-batches 30 --log-every-n-steps 10 > prog.log 2>&1
n=$(grep -cE "^epoch 1/1 batch [0-9]+/30 step [0-9]+ .*it/s" prog.log)
if [[ $n -eq 3 ]]; then echo "ok: $n progress lines"; else echo "FAIL: $n progress lines (want 3)"; cat prog.log; fail=1; fi

# 2b. On a terminal the same progress is redrawn in place (carriage return + erase line)
if command -v script >/dev/null; then
  script -qfec "$BIN --dataset synthetic --workers 2 --limit-train-batches 30 --log-every-n-steps 10" /dev/null > tty.log 2>&1
  if grep -q $'\r\e\[K''epoch 1/1 batch 30/30' tty.log; then echo "ok: progress bar redrawn on a TTY"; else echo "FAIL: no in-place progress on a TTY"; fail=1; fi
fi

# 2c. Reproducible: the same seed gives the same model, spawned or under mpirun (exact metrics)
"$BIN" --dataset synthetic --workers 2 --limit-train-batches 20 --no-progress --summary-json spawn.json > /dev/null 2>&1
timeout -k 5 300 mpirun -n 2 --oversubscribe "$BIN" --dataset synthetic --limit-train-batches 20 --no-progress --summary-json spmd.json > /dev/null 2>&1
a=$(json spawn.json val_loss); b=$(json spmd.json val_loss)
if [[ -n $a && $a == "$b" ]]; then echo "ok: spawn and mpirun give val_loss $a"; else echo "FAIL: spawn val_loss $a, mpirun $b"; fail=1; fi

# 3. --config file, flags override it
printf 'model = lenet\nepochs = 1\nlimit-train-batches = 5\nlimit-val-batches = 2\ndataset = synthetic\n' > opts.cfg
timeout -k 5 300 "$BIN" --config opts.cfg --model mlp --workers 2 --no-progress --summary-json cfg.json > cfg.log 2>&1 || { cat cfg.log; fail=1; }
if [[ $(json cfg.json model) == mlp && $(json cfg.json steps) == 5.0 ]]; then echo "ok: config file + override"; else echo "FAIL: config file"; cat cfg.log; fail=1; fi

# 3b. --dataset hdf5:PATH, a file written by h5py (X uint8 [N,28,28], y int64, X_test/y_test):
#     each rank reads only its rows; 12,000 Fashion-MNIST images, 2 epochs.
if [[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]]; then
  /usr/bin/python3 - <<'PY'
import gzip, h5py, numpy as np
d = "/usr/share/datasets/fashion-mnist/"
idx = lambda f, off: np.frombuffer(gzip.open(d + f).read(), np.uint8, offset=off)
with h5py.File("fm.h5", "w") as f:
    f["X"] = idx("train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)[:12000]
    f["y"] = idx("train-labels-idx1-ubyte.gz", 8)[:12000].astype(np.int64)
    f["X_test"] = idx("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)[:2000]
    f["y_test"] = idx("t10k-labels-idx1-ubyte.gz", 8)[:2000].astype(np.int64)
    f["only_x"] = np.zeros((3, 28, 28), np.uint8)
h5py.File("nolabels.h5", "w")["X"] = np.zeros((3, 28, 28), np.uint8)
PY
  timeout -k 5 300 "$BIN" --dataset hdf5:fm.h5 --workers 2 --epochs 2 --no-progress --summary-json h5.json > h5.log 2>&1 || { cat h5.log; fail=1; }
  acc=$(json h5.json test_accuracy 2>/dev/null || echo 0)
  if /usr/bin/python3 -c "import sys; sys.exit(0 if float('$acc') >= 0.75 else 1)"; then
    echo "ok: hdf5:fm.h5 (h5py, 12,000 images), 2 workers, 2 epochs: test accuracy $acc, $(json h5.json steps) steps"
  else echo "FAIL: hdf5 dataset accuracy $acc"; cat h5.log; fail=1; fi
fi

# 4. Bad input: one line naming the problem, exit 2
expect() {  # expect <text> -- args...
  local want=$1; shift 2
  local err rc
  err=$(timeout -k 5 120 "$BIN" "$@" 2>&1 >/dev/null); rc=$?
  if [[ $rc -ne 2 || $err != *"$want"* || $(printf '%s\n' "$err" | grep -c .) -ne 1 ]]; then
    echo "FAIL: $* -> exit $rc: $err (want exit 2 and one line with '$want')"; fail=1
  else echo "ok: $* -> $err"; fi
}
expect "unknown model 'vgg' (expected mlp, lenet, resnet18 or resnet18-cifar)" -- --model vgg
expect "unknown dataset 'cifar10'" -- --dataset cifar10
expect "unknown optimizer 'rmsprop'" -- --optimizer rmsprop
expect "dataset file /nonexistent/train-images-idx3-ubyte.gz not found" -- --data-dir /nonexistent
expect "dataset file /nonexistent.h5 not found" -- --dataset hdf5:/nonexistent.h5
[[ -f nolabels.h5 ]] && expect "nolabels.h5 needs datasets X (images) and y (labels)" -- --dataset hdf5:nolabels.h5
expect "/etc/hostname is not an HDF5 file" -- --dataset hdf5:/etc/hostname
expect "batch size must be at least 1 (got 0)" -- --batch-size 0
expect "precision must be \"32\" or \"bf16-mixed\"" -- --precision fp8
expect "unknown strategy 'nosuch' (available: ddp, horovod, sharded)" -- --strategy nosuch
expect "cannot read config file /nonexistent.cfg" -- --config /nonexistent.cfg
expect "unrecognised option '--epochz'" -- --epochz 3
expect "trainer options: option 'strategy.options' must be an object" -- --strategy-options '[1]'
expect "strategy 'ddp': unknown option 'bucket_cap'" -- --strategy-options '{"bucket_cap": 1}'

# 5. --use-gpu on a machine without a GPU: one line naming the cause, exit 2 on every rank, no hang
#    (a build without NCCL names that instead). Under mpirun each rank reports its own exit code.
gpu_msg() { [[ $1 == *"sees no CUDA device"* || $1 == *"has no NCCL backend"* ]]; }
err=$(timeout -k 5 120 "$BIN" --use-gpu --dataset synthetic 2>&1 >/dev/null); rc=$?
if [[ $rc -eq 2 ]] && gpu_msg "$err" && [[ $(printf '%s\n' "$err" | grep -c .) -eq 1 ]]; then echo "ok: spawned --use-gpu -> $err"
else echo "FAIL: spawned --use-gpu -> exit $rc: $err"; fail=1; fi
err=$(timeout -k 5 120 mpirun -n 2 --oversubscribe sh -c \
  '"$0" --use-gpu --dataset synthetic >/dev/null; echo "rank $OMPI_COMM_WORLD_RANK exit $?" >&2' "$BIN" 2>&1)
if gpu_msg "$err" && [[ $(printf '%s\n' "$err" | grep -c '^mpitrain-train:') -eq 1 && $err == *"rank 0 exit 2"* &&
      $err == *"rank 1 exit 2"* ]]; then echo "ok: mpirun --use-gpu -> $(printf '%s\n' "$err" | grep '^mpitrain-train:')"
else echo "FAIL: mpirun --use-gpu -> $err"; fail=1; fi

# 6. A loss that becomes NaN/inf stops every rank at the same step with exit 1 and one line, spawned
#    and under mpirun; --allow-nonfinite-loss trains on and metrics.csv shows the NaN.
nan=(--dataset synthetic --lr 1e30 --limit-train-batches 20 --no-progress --no-checkpoint)
err=$(timeout -k 5 120 "$BIN" "${nan[@]}" 2>&1 >/dev/null); rc=$?
if [[ $rc -eq 1 && $err == *"train_loss became "*" at step "*" (rank "* && $(printf '%s\n' "$err" | grep -c .) -eq 1 ]]; then
  echo "ok: spawned NaN run -> $err"
else echo "FAIL: spawned NaN run -> exit $rc: $err"; fail=1; fi
err=$(timeout -k 5 120 mpirun -n 2 --oversubscribe sh -c \
  '"$0" "$@" >/dev/null; echo "rank $OMPI_COMM_WORLD_RANK exit $?" >&2' "$BIN" "${nan[@]}" 2>&1)
if [[ $(printf '%s\n' "$err" | grep -c '^mpitrain-train: train_loss became .* at step') -eq 1 && $err == *"rank 0 exit 1"* &&
      $err == *"rank 1 exit 1"* ]]; then echo "ok: mpirun NaN run -> $(printf '%s\n' "$err" | grep '^mpitrain-train:')"
else echo "FAIL: mpirun NaN run -> $err"; fail=1; fi
timeout -k 5 120 "$BIN" "${nan[@]}" --allow-nonfinite-loss --output-dir nanrun > nanrun.log 2>&1; rc=$?
if [[ $rc -eq 0 ]] && grep -qiE ',train_loss(_epoch)?,-?nan$' nanrun/metrics.csv; then echo "ok: --allow-nonfinite-loss trains on; metrics.csv: $(grep -m1 -iE 'train_loss(_epoch)?,-?nan' nanrun/metrics.csv)"
else echo "FAIL: --allow-nonfinite-loss -> exit $rc"; cat nanrun.log; head nanrun/metrics.csv; fail=1; fi
expect "learning rate must be positive and finite" -- --lr inf

# 7. Bad paths and values are bad input: one line, exit 2, before any worker starts.
touch afile
mkdir -p emptylatest/checkpoints && : > emptylatest/checkpoints/latest
expect "output directory afile cannot be created" -- --dataset synthetic --output-dir afile
expect "output directory /proc/x cannot be created" -- --dataset synthetic --output-dir /proc/x
expect "output directory is empty" -- --dataset synthetic --output-dir ""
expect "checkpoint directory /proc/x cannot be created" -- --dataset synthetic --checkpoint-dir /proc/x
expect "--summary-json $work is a directory" -- --dataset synthetic --summary-json "$work"
expect "does not exist or is not writable" -- --dataset synthetic --summary-json /nonexistent/s.json
expect "emptylatest/checkpoints/latest is empty or unreadable" -- --dataset synthetic --output-dir emptylatest --resume auto
expect "init_weights: /etc/hostname is not an HDF5 file" -- --dataset synthetic --init-weights /etc/hostname
expect "config file /tmp is not a regular file" -- --config /tmp
expect "config file /dev/zero is not a regular file" -- --config /dev/zero
expect "too many positional options" -- --dataset synthetic stray
expect "batch size must be at least 1 and below 2^31 (got 2147483648)" -- --batch-size 2147483648
expect "option 'scaling.num_workers' is out of range (got 4294967298)" -- --workers 4294967298
expect "100 workers x 1 CPUs each = 100 CPUs, but this node has" -- --dataset synthetic --workers 100
expect "2 workers x 1000 CPUs each = 2000 CPUs, but this node has" -- --dataset synthetic --cpus-per-worker 1000
if [[ -f fm.h5 ]]; then
  /usr/bin/python3 -c "
import h5py, numpy as np
with h5py.File('badlabels.h5', 'w') as f:
    f['X'] = np.zeros((64, 28, 28), np.uint8); f['y'] = np.full(64, 12, np.int64)"
  expect "y holds labels from 12 to 12, the model has classes 0..9" -- --dataset hdf5:badlabels.h5 --workers 2
fi

# A full disk while writing a checkpoint: exit 1 with HDF5's cause on one line (no driver report
# dump), nothing left in the directory. Needs root for a small tmpfs; skipped otherwise.
mkdir -p tiny
if mount -t tmpfs -o size=2m tmpfs tiny 2>/dev/null; then
  timeout -k 5 120 "$BIN" --dataset synthetic --workers 1 --no-progress --epochs 1 --checkpoint-dir "$work/tiny" \
    --output-dir full > full.log 2>&1
  rc=$?
  if [[ $rc -eq 1 ]] && grep -q "^mpitrain-train: rank 0: cannot write checkpoint .*: file write failed: No space left on device (errno 28)$" full.log &&
     ! grep -q "time = " full.log && [[ -z $(ls -A tiny) ]]; then
    echo "ok: full disk: $(grep -o 'file write failed.*' full.log)"
  else echo "FAIL: full disk: exit $rc"; cat full.log; ls -la tiny; fail=1; fi
  umount tiny
else
  echo "SKIP full-disk check: cannot mount a tmpfs (not root?)"
fi
exit $fail
