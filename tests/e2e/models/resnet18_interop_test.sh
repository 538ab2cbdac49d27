#!/usr/bin/env bash
# mpitrain's resnet18 is torchvision's: a checkpoint loads into torchvision.models.resnet18 (the
# seed's conv1) with load_state_dict(strict=True) and gives mpitrain's logits (<= 1e-5, eval), and
# torchvision weights written with h5py initialise mpitrain (same logits; a run starts from them).
# Usage: resnet18_interop_test.sh <mpitrain-train> <ckpt_forward> <dir of torch_interop.py>
set -uo pipefail
TRAIN=$(realpath "$1") FORWARD=$(realpath "$2") INTEROP=$(realpath "$3")/torch_interop.py
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail=0
PY=/usr/bin/python3
$PY -c "import torchvision" 2>/dev/null || { echo "SKIP: no torchvision for /usr/bin/python3 (apt-get install python3-torchvision)"; exit 77; }

# 1. mpitrain -> torchvision: a short run (BatchNorm statistics move), its checkpoint, the logits.
timeout -k 5 300 "$TRAIN" --model resnet18 --dataset synthetic --workers 1 --epochs 1 --limit-train-batches 3 \
  --limit-val-batches 1 --batch-size 16 --optimizer adam --lr 1e-3 --no-progress --output-dir run > run.log 2>&1 \
  || { echo "FAIL: training run"; cat run.log; exit 1; }
ckpt=run/checkpoints/$(cat run/checkpoints/latest)
"$FORWARD" "$ckpt" fwd.h5 16 > fwd.log 2>&1 || { echo "FAIL: ckpt_forward"; cat fwd.log; fail=1; }
$PY "$INTEROP" "$ckpt" fwd.h5 && echo "ok: torchvision loads the mpitrain checkpoint (strict) with the same logits" \
  || { echo "FAIL: mpitrain -> torchvision"; fail=1; }

# 2. torchvision -> mpitrain: weights (with moved BN statistics) saved with h5py.
$PY - <<'PY' || fail=1
import h5py, torch, torch.nn as nn, torchvision
torch.manual_seed(0)
m = torchvision.models.resnet18(num_classes=10)
m.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
m.train()
with torch.no_grad():
    m(torch.randn(8, 1, 28, 28))  # running statistics move away from their defaults
m.eval()
x = torch.randn(6, 1, 28, 28)
with torch.no_grad():
    logits = m(x)
with h5py.File("tv.h5", "w") as f:
    for k, v in m.state_dict().items():
        f["model/" + k] = v.numpy()
with h5py.File("in.h5", "w") as f:
    f["input"] = x.numpy()
    f["logits"] = logits.numpy()
print(f"wrote {len(m.state_dict())} tensors of torchvision's resnet18")
PY
"$FORWARD" --init-weights tv.h5 in.h5 out.h5 > init.log 2>&1 || { echo "FAIL: init from torchvision weights"; cat init.log; fail=1; }
$PY - <<'PY' || fail=1
import h5py, numpy as np
ref, got = h5py.File("in.h5")["logits"][()], h5py.File("out.h5")["logits"][()]
d = float(np.max(np.abs(ref - got)))
print(("ok" if d <= 1e-5 else "FAIL") + f": torchvision weights in mpitrain: max |logits diff| = {d:.3g}")
raise SystemExit(0 if d <= 1e-5 else 1)
PY
# A run starts from them (the learning rate is so small that conv1 stays where torchvision put it).
timeout -k 5 300 "$TRAIN" --model resnet18 --dataset synthetic --workers 1 --epochs 1 --limit-train-batches 1 \
  --limit-val-batches 1 --batch-size 8 --optimizer adam --lr 1e-9 --init-weights tv.h5 --no-progress --output-dir init \
  > init_run.log 2>&1 || { echo "FAIL: mpitrain-train --init-weights"; cat init_run.log; fail=1; }
$PY - tv.h5 "init/checkpoints/$(cat init/checkpoints/latest 2>/dev/null)" <<'PY' || fail=1
import sys, h5py, numpy as np
tv, ck = h5py.File(sys.argv[1]), h5py.File(sys.argv[2])
d = float(np.max(np.abs(tv["model/conv1.weight"][()] - ck["model/net.conv1.weight"][()])))
print(("ok" if d <= 1e-6 else "FAIL") + f": mpitrain-train --init-weights starts from torchvision's weights (conv1 moved {d:.2g})")
raise SystemExit(0 if d <= 1e-6 else 1)
PY
# Bad input: a file whose tensors do not fit the model -> one line, exit 2.
$PY -c "import h5py, numpy as np; h5py.File('bad.h5', 'w')['model/conv1.weight'] = np.zeros((64, 3, 7, 7), np.float32)"
err=$("$TRAIN" --model resnet18 --dataset synthetic --workers 1 --init-weights bad.h5 --no-progress 2>&1 >/dev/null); rc=$?
[[ $rc -eq 2 && $err == *"bad.h5: /model/conv1.weight has shape [64, 3, 7, 7], the model's is [64, 1, 7, 7]"* ]] \
  && echo "ok: mismatched weights -> exit 2: $(tail -1 <<< "$err")" || { echo "FAIL: bad weights -> exit $rc: $err"; fail=1; }
exit $fail
