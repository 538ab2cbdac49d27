"""PyTorch reads an mpitrain checkpoint: h5py opens it, the /model datasets load into the same
architecture written in PyTorch (for resnet18: torchvision.models.resnet18 with the seed example's
conv1, load_state_dict(strict=True)), and its outputs on a batch match mpitrain's (max |diff| <=
1e-6; 1e-5 for ResNet-18, eval mode).
Usage: torch_interop.py CKPT FORWARD.h5   (FORWARD.h5 from ckpt_forward: input and mpitrain's logits)
Run with /usr/bin/python3 (Debian's torch and h5py)."""
import json
import sys

import h5py
import torch
import torch.nn as nn
import torch.nn.functional as F


class Mlp(nn.Module):  # mpitrain models::make_mlp(784, {layer_1, layer_2}, 10): names net.layers.{0,2,4}
    def __init__(self, config):
        super().__init__()
        h1, h2 = config.get("layer_1", 1024), config.get("layer_2", 1024)
        self.layers = nn.Sequential(nn.Linear(784, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU(), nn.Linear(h2, 10))

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


def seed_resnet18():
    """The seed example's model: torchvision's ResNet-18 with a 1-channel 7x7/2 first convolution."""
    import torchvision
    m = torchvision.models.resnet18(num_classes=10)
    m.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return m


def text(attr):
    """mpitrain writes fixed-length UTF-8 string attributes (checksummed in the object header),
    which h5py returns as bytes."""
    return attr.decode() if isinstance(attr, bytes) else attr


def main(ckpt, forward):
    with h5py.File(ckpt, "r") as f:
        assert text(f.attrs["format"]) == "mpitrain-checkpoint", f.attrs["format"]
        config = json.loads(f.attrs["config"])
        state = {}
        tensors = list(f["model"].items()) + (list(f["buffers"].items()) if "buffers" in f else [])
        for name, ds in tensors:  # parameters in /model, buffers (BatchNorm statistics) in /buffers
            want = "int64" if name.endswith("num_batches_tracked") else "float32"
            assert text(ds.attrs["dtype"]) == want, (name, ds.attrs["dtype"])
            assert name.startswith("net."), name
            state[name[len("net."):]] = torch.as_tensor(ds[()])  # 0-d (num_batches_tracked) too
        print(f"{ckpt}: module {text(f.attrs['module'])}, model {config['model']}, world size {f.attrs['world_size']}, "
              f"step {f['trainer'].attrs['global_step']}, {len(state)} tensors")
    model = {"mlp": lambda: Mlp(config), "lenet": LeNet, "resnet18": seed_resnet18}[config["model"]]()
    model.load_state_dict(state, strict=True)  # every name and shape must match
    model.eval()
    with h5py.File(forward, "r") as f:
        x = torch.from_numpy(f["input"][()])
        theirs = torch.from_numpy(f["logits"][()])
    with torch.no_grad():
        ours = model(x)
    diff = (ours - theirs).abs().max().item()
    print(f"{config['model']}: {x.shape[0]} inputs, max |PyTorch - mpitrain| = {diff:.3g}")
    tol = 1e-5 if config["model"] == "resnet18" else 1e-6
    if not diff <= tol:
        print(f"FAIL: outputs differ by more than {tol}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
