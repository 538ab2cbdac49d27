#!/usr/bin/env bash
# e2e for checkpoints (issue #5): exact resume after a SIGKILLed worker (FailureConfig), a crash
# between write and rename, corruption and bad input, PyTorch reading the weights, and SPMD
# checkpoint-and-stop on SIGUSR1 followed by --resume auto.
# Usage: checkpoint_test.sh <mpitrain-train> <mpitrain-ckpt> <ckpt_forward> <dir of torch_interop.py>
set -uo pipefail
TRAIN=$1 CKPT=$2 FORWARD=$3 HERE=$4
PY=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }
# Same weights and optimizer state, bit for bit (numpy array_equal on every dataset of both groups).
same_state() {
  $PY - "$1" "$2" <<'PY'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
names = []
a.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) and n.split("/")[0] in ("model", "optimizer") else None)
diff = [n for n in names if n not in b or not np.array_equal(a[n][()], b[n][()])]
print(f"{len(names)} datasets compared, {len(diff)} differ {diff[:3]}")
sys.exit(1 if diff or not names else 0)
PY
}
base=(--dataset synthetic --deterministic --no-progress)
common=("${base[@]}" --workers 2 --checkpoint-every-n-steps 10)

# 1. Exact resume: B's rank 1 is SIGKILLed after step 65 (mid epoch 2; 47 steps per epoch); with
#    --max-failures 1 the job relaunches from the step-60 checkpoint and ends where A ends.
timeout -k 5 300 "$TRAIN" "${common[@]}" --epochs 2 --output-dir A --summary-json A.json > A.log 2>&1 || { cat A.log; bad "run A"; }
MPITRAIN_TEST_KILL_AT_STEP=1:65:$work/killed timeout -k 5 300 "$TRAIN" "${common[@]}" --epochs 2 --output-dir B --max-failures 1 \
  --summary-json B.json > B.log 2>&1 || { cat B.log; bad "run B did not recover"; }
if [[ -f killed ]] && grep -q "killed by signal 9" B.log && grep -q "resuming from B/checkpoints/epoch=1-step=60.h5" B.log; then
  ok "run B: rank 1 SIGKILLed after step 65, relaunched from the step-60 checkpoint"
else
  bad "run B was not killed and resumed as planned"; cat B.log
fi
$PY -c "import json; r=json.load(open('B.json')); assert len(r['failures']) == 1 and r['steps'] == 94, r" || bad "B.json lacks the failure record"
if same_state A/checkpoints/last.h5 B/checkpoints/last.h5; then ok "final weights and optimizer state of A and B are bit-identical"; else bad "A and B differ"; fi

# 1b. The same with Adam, a cosine schedule and accumulate_grad_batches=2 (24 steps per epoch, the
#     last one at the epoch's final batch): killed after step 30, resumed from the step-24 checkpoint.
adam=(--optimizer adam --lr 1e-3 --scheduler cosine --accumulate-grad-batches 2 --checkpoint-every-n-steps 8 --epochs 2)
timeout -k 5 300 "$TRAIN" "${base[@]}" --workers 2 "${adam[@]}" --output-dir E > E.log 2>&1 || { cat E.log; bad "run E"; }
MPITRAIN_TEST_KILL_AT_STEP=0:30:$work/killed2 timeout -k 5 300 "$TRAIN" "${base[@]}" --workers 2 "${adam[@]}" --output-dir F \
  --max-failures 1 > F.log 2>&1 || { cat F.log; bad "run F did not recover"; }
if grep -q "resuming from F/checkpoints/epoch=0-step=24.h5" F.log && same_state E/checkpoints/last.h5 F/checkpoints/last.h5; then
  ok "Adam + cosine + accumulate 2: killed after step 30, resumed from step 24, bit-identical"
else
  bad "Adam resume"; tail -5 F.log
fi

# 1c. max_steps stops inside an epoch; a resumed run with a larger max_steps continues from there
#     and ends where one run to that many steps ends. Resuming on 1 worker converts the position.
timeout -k 5 300 "$TRAIN" "${common[@]}" --max-steps 60 --epochs 5 --output-dir G > G.log 2>&1 || bad "run G"
timeout -k 5 300 "$TRAIN" "${common[@]}" --max-steps 30 --epochs 5 --output-dir H > H.log 2>&1 || bad "run H (30 steps)"
timeout -k 5 300 "$TRAIN" "${common[@]}" --max-steps 60 --epochs 5 --output-dir H --resume auto > H2.log 2>&1 || bad "run H (60 steps)"
if grep -q "resuming from H/checkpoints/epoch=0-step=30.h5 at epoch 1, batch 30" H2.log && same_state G/checkpoints/last.h5 H/checkpoints/last.h5; then
  ok "max_steps 30 then 60 == max_steps 60, bit-identical"
else
  bad "max_steps resume"; grep resuming H2.log
fi
timeout -k 5 300 "$TRAIN" "${base[@]}" --workers 1 --checkpoint-every-n-steps 10 --max-steps 100 --epochs 5 --output-dir H --resume auto > H3.log 2>&1 || bad "resume on 1 worker"
grep -q "checkpoint of 2 ranks on 1: continuing the epoch at batch 26" H3.log && ok "2-rank checkpoint at batch 13 of epoch 2 resumes on 1 rank at batch 26" || { bad "world-size change"; cat H3.log; }

# 1d. ModelCheckpoint with a monitor: of 4 epoch-end checkpoints, the best by val_loss and the
#     newest are kept, the others deleted; latest and last.h5 name the newest.
timeout -k 5 300 "$TRAIN" "${base[@]}" --workers 2 --epochs 4 --lr 0.5 --monitor val_loss --save-top-k 1 --keep-last-k 1 \
  --output-dir M > M.log 2>&1 || { cat M.log; bad "run M"; }
$PY - <<'PY' && ok "monitor val_loss: kept exactly the best and the newest checkpoint" || bad "ModelCheckpoint top-k"
import csv, glob, os
rows = [r for r in csv.DictReader(open("M/metrics.csv")) if r["name"] == "val_loss"]
best = min(range(len(rows)), key=lambda e: float(rows[e]["value"]))  # epoch index of the lowest val_loss
files = sorted(os.path.basename(f) for f in glob.glob("M/checkpoints/epoch=*.h5"))
newest = open("M/checkpoints/latest").read().strip()
want = sorted({newest, f"epoch={best}-step={rows[best]['step']}.h5"})
print("val_loss by step:", [(r["step"], round(float(r["value"]), 4)) for r in rows], "kept:", files)
assert len(rows) == 4 and files == want, (files, want)
assert os.path.samefile("M/checkpoints/last.h5", "M/checkpoints/" + newest)
PY

# 2. A crash between writing and renaming leaves the previous checkpoint and `latest` as they were.
before=$(cat A/checkpoints/latest)
MPITRAIN_TEST_CRASH_BEFORE_RENAME=1 timeout -k 5 300 "$TRAIN" "${common[@]}" --epochs 3 --output-dir A --resume auto > crash.log 2>&1
rc=$?
tmp=$(ls A/checkpoints/*.tmp 2>/dev/null | head -1)
if [[ $rc -ne 0 && $(cat A/checkpoints/latest) == "$before" && -n $tmp ]] && "$CKPT" verify A/checkpoints > /dev/null; then
  ok "crash before rename (exit $rc): latest still $before and loadable, partial $(basename "$tmp") left behind"
else
  bad "crash before rename: rc=$rc latest=$(cat A/checkpoints/latest) tmp=$tmp"; cat crash.log
fi
timeout -k 5 300 "$TRAIN" "${common[@]}" --epochs 3 --output-dir A --resume auto --summary-json A3.json > A3.log 2>&1 || { cat A3.log; bad "resume after the crash"; }
if ! ls A/checkpoints/*.tmp > /dev/null 2>&1 && $PY -c "import json; assert json.load(open('A3.json'))['steps'] == 141"; then
  ok "next run resumed, removed the partial file and finished epoch 3 (141 steps)"
else
  bad "partial file not removed or wrong step count"; ls A/checkpoints; cat A3.log
fi

# 3. Corruption: flipped bytes inside a dataset, and a truncated file.
cp A/checkpoints/last.h5 flipped.h5
$PY - <<'PY'
import h5py
with h5py.File("flipped.h5", "r") as f:
    # before HDF5 1.14.4 chunk addresses are relative to the end of the user block (mpitrain's layout map)
    base = f.userblock_size if h5py.version.hdf5_version_tuple < (1, 14, 4) else 0
    off = f["model/net.layers.2.weight"].id.get_chunk_info(0).byte_offset + base
with open("flipped.h5", "r+b") as f:
    f.seek(off + 4096); b = f.read(8); f.seek(off + 4096); f.write(bytes(x ^ 0xFF for x in b))
PY
out=$("$CKPT" verify flipped.h5 2>&1); rc=$?
if [[ $rc -ne 0 && $out == *CheckpointError*"/model/net.layers.2.weight"* ]]; then ok "verify: $out"; else bad "verify of flipped bytes: rc=$rc $out"; fi
out=$(timeout -k 5 120 "$TRAIN" "${common[@]}" --output-dir C --resume flipped.h5 2>&1 | tail -1); rc=${PIPESTATUS[0]}
if [[ $rc -eq 2 && $out == *"/model/net.layers.2.weight"* ]]; then ok "load of flipped bytes (exit 2): $out"; else bad "load of flipped bytes: rc=$rc $out"; fi
head -c 3000000 A/checkpoints/last.h5 > truncated.h5
out=$("$CKPT" verify truncated.h5 2>&1); rc=$?
# HDF5 cannot open it (its index is at the end); the layout map in the user block names what is cut.
if [[ $rc -ne 0 && $out == *CheckpointError*truncated.h5*"is truncated"*"/model/net.layers.0.weight"*"cut off"* ]]; then ok "verify of a truncated file: $out"; else bad "verify truncated: rc=$rc $out"; fi
out=$(timeout -k 5 120 "$TRAIN" "${common[@]}" --output-dir C --resume truncated.h5 2>&1 | tail -1); rc=${PIPESTATUS[0]}
if [[ $rc -eq 2 && $out == *truncated.h5*"/model/net.layers.0.weight"* ]]; then ok "load of a truncated file (exit 2): $out"; else bad "load truncated: rc=$rc $out"; fi

# 4. Bad input: another model, not HDF5, a missing path, a future version, `latest` without one.
timeout -k 5 300 "$TRAIN" --dataset synthetic --workers 2 --model lenet --limit-train-batches 10 --no-progress --output-dir L > L.log 2>&1 || { cat L.log; bad "lenet run"; }
cp A/checkpoints/last.h5 future.h5
$PY -c "import h5py, numpy as np; f = h5py.File('future.h5', 'r+'); f.attrs['format_version'] = np.int64(99)"
echo "not a checkpoint" > text.h5
check_bad() {  # expected-substring, resume argument
  local out rc
  out=$(timeout -k 5 120 "$TRAIN" "${common[@]}" --output-dir D --resume "$2" 2>&1 | tail -1); rc=${PIPESTATUS[0]}
  if [[ $rc -eq 2 && $out == *"$1"* && $(wc -l <<< "$out") -eq 1 ]]; then ok "--resume $2 -> exit 2: $out"; else bad "--resume $2: rc=$rc: $out"; fi
}
check_bad "has no dataset /model/net.layers.0.weight" L/checkpoints/last.h5
check_bad "not an HDF5 file" text.h5
check_bad "does not exist" missing.h5
check_bad "format version 99" future.h5
check_bad "latest does not exist" latest
out=$("$CKPT" inspect future.h5 2>&1); [[ $? -ne 0 && $out == *"version 99"* ]] && ok "inspect of a future version fails: $out" || bad "inspect future: $out"

# 5. PyTorch loads the weights into the same architecture and gets the same outputs (<= 1e-6).
for run in A L; do
  "$FORWARD" $run/checkpoints/last.h5 fwd_$run.h5 64 > /dev/null || bad "ckpt_forward $run"
  $PY "$HERE/torch_interop.py" $run/checkpoints/last.h5 fwd_$run.h5 || bad "PyTorch interop ($run)"
done
"$CKPT" export A/checkpoints weights.h5 > /dev/null && $PY - <<'PY' || bad "export"
import h5py
f = h5py.File("weights.h5", "r")
assert f.attrs["kind"] == b"weights" and "optimizer" not in f and len(f["model"]) == 6, list(f)
print("ok: export wrote the 6 weight tensors only")
PY

# 6. SPMD: SIGUSR1 (what Slurm's --signal sends) makes every rank checkpoint at the next step and
#    exit 75; --resume auto then finishes with the same weights as an uninterrupted run.
spmd=(mpirun -n 2 --oversubscribe "$TRAIN" --dataset synthetic --epochs 4 --deterministic --no-progress --checkpoint-every-n-steps 10)
timeout -k 5 300 "${spmd[@]}" --output-dir U > U.log 2>&1 || { cat U.log; bad "uninterrupted SPMD run"; }
timeout -k 5 300 "${spmd[@]}" --output-dir S > S.log 2>&1 &
pid=$!
for _ in $(seq 1 600); do [[ -f S/checkpoints/latest ]] && break; sleep 0.05; done
kill -USR1 "$(pgrep -P $pid -x mpirun)"  # mpirun forwards SIGUSR1 to every rank
wait $pid; rc=$?
stopped_at=$(cat S/checkpoints/latest 2>/dev/null)
if [[ $rc -eq 75 ]] && grep -q "stopped by signal 10" S.log; then ok "SIGUSR1 -> checkpoint $stopped_at, exit 75"; else bad "SIGUSR1: exit $rc"; cat S.log; fi
timeout -k 5 300 "${spmd[@]}" --output-dir S --resume auto > S2.log 2>&1 || { cat S2.log; bad "SPMD resume"; }
if grep -q "resuming from" S2.log && same_state U/checkpoints/last.h5 S/checkpoints/last.h5; then
  ok "SPMD resume after SIGUSR1 ends bit-identical to the uninterrupted run"
else
  bad "SPMD resume differs"; tail -3 S2.log
fi

[[ $fail -eq 0 ]] && echo "checkpoint e2e: all passed"
exit $fail
