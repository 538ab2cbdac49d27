"""PyTorch reads an mpitrain checkpoint: h5py opens it, the /model datasets load into the same
architecture written in PyTorch, and its outputs on a batch match mpitrain's (max |diff| <= 1e-6).
Usage: torch_interop.py CKPT FORWARD.h5   (FORWARD.h5 from ckpt_forward: input and mpitrain's logits)
Run with /usr/bin/python3 (Debian's torch and h5py)."""
import json
import sys

import h5py
import torch
import torch.nn as nn
import torch.nn.functional as F


class Mlp(nn.Module):  # mpitrain models::make_mlp(784, {1024, 1024}, 10): names net.layers.{0,2,4}
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10))

    def forward(self, x):
        return self.layers(x.flatten(1))


class LeNet(nn.Module):  # mpitrain models::make_lenet(1, 10)
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 5, padding=2)
        self.c2 = nn.Conv2d(6, 16, 5)
        self.f1, self.f2, self.f3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        x = F.adaptive_avg_pool2d(x, (5, 5)).flatten(1)
        return self.f3(F.relu(self.f2(F.relu(self.f1(x)))))


def text(attr):
    """mpitrain writes fixed-length UTF-8 string attributes (checksummed in the object header),
    which h5py returns as bytes."""
    return attr.decode() if isinstance(attr, bytes) else attr


def main(ckpt, forward):
    with h5py.File(ckpt, "r") as f:
        assert text(f.attrs["format"]) == "mpitrain-checkpoint", f.attrs["format"]
        config = json.loads(f.attrs["config"])
        state = {}
        for name, ds in f["model"].items():
            assert text(ds.attrs["dtype"]) == "float32", (name, ds.attrs["dtype"])
            assert name.startswith("net."), name
            state[name[len("net."):]] = torch.from_numpy(ds[()])
        print(f"{ckpt}: module {text(f.attrs['module'])}, model {config['model']}, world size {f.attrs['world_size']}, "
              f"step {f['trainer'].attrs['global_step']}, {len(state)} tensors")
    model = {"mlp": Mlp, "lenet": LeNet}[config["model"]]()
    model.load_state_dict(state, strict=True)  # every name and shape must match
    model.eval()
    with h5py.File(forward, "r") as f:
        x = torch.from_numpy(f["input"][()])
        theirs = torch.from_numpy(f["logits"][()])
    with torch.no_grad():
        ours = model(x)
    diff = (ours - theirs).abs().max().item()
    print(f"{config['model']}: {x.shape[0]} inputs, max |PyTorch - mpitrain| = {diff:.3g}")
    if not diff <= 1e-6:
        print("FAIL: outputs differ by more than 1e-6")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
