#!/usr/bin/python3
"""Baseline for `mpitrain-bench train` / `seed`: PyTorch DDP (gloo, loopback) on the same model,
batch B per rank, 1 intra-op thread per rank: the MLP 784-1024-1024-10 with SGD, or
torchvision's resnet18 with the seed example's 1-channel conv1 and Adam 1e-3. Prints
`samples_per_s <value>` (all ranks, steady state after warm-up). With TRACE (1 rank only), the
timed steps run under PyTorch's legacy profiler, the one mpitrain-bench --profile uses in C++,
and its chrome trace is written there ("-": none). MEMORY_FORMAT channels_last puts the model and
the input batch in torch.channels_last (PyTorch's own recipe); contiguous (default) is what the
seed guide runs.
Usage: torch_ddp_baseline.py RANKS PORT STEPS WARMUP BATCH [mlp|resnet18 [TRACE|- [contiguous|channels_last]]]"""
import os
import sys
import time


def worker(rank, world, port, steps, warmup, batch, model_name, trace, memory_format, queue):
    import torch
    import torch.distributed as dist
    import torch.nn as nn
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.manual_seed(0)
    if model_name == "resnet18":
        import torchvision
        model = torchvision.models.resnet18(num_classes=10)
        model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        x = torch.randn(batch, 1, 28, 28)
    else:
        model = nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10))
        x = torch.randn(batch, 784)
    if memory_format == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model)
    if model_name == "resnet18":
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    y = torch.randint(0, 10, (batch,))
    loss_fn = nn.CrossEntropyLoss()
    profiler = None
    for i in range(warmup + steps):
        if i == warmup:
            dist.barrier()
            if trace:
                profiler = torch.autograd.profiler_legacy.profile()
                profiler.__enter__()
            t0 = time.perf_counter()
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    dt = torch.tensor([time.perf_counter() - t0])
    if profiler:
        profiler.__exit__(None, None, None)
        profiler.export_chrome_trace(trace)
    dist.all_reduce(dt, op=dist.ReduceOp.MAX)
    if rank == 0:
        queue.put(steps * batch * world / dt.item())
    dist.destroy_process_group()


def main():
    world, port, steps, warmup, batch = (int(a) for a in sys.argv[1:6])
    model_name = sys.argv[6] if len(sys.argv) > 6 else "mlp"
    trace = sys.argv[7] if len(sys.argv) > 7 and sys.argv[7] != "-" else ""
    memory_format = sys.argv[8] if len(sys.argv) > 8 else "contiguous"
    if memory_format not in ("contiguous", "channels_last"):
        sys.exit(f"torch_ddp_baseline.py: memory format must be contiguous or channels_last (got {memory_format})")
    if trace and world != 1:
        sys.exit("torch_ddp_baseline.py: a trace is written for 1 rank only")
    import torch.multiprocessing as mp
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.spawn(worker, args=(world, port, steps, warmup, batch, model_name, trace, memory_format, queue), nprocs=world, join=True)
    print(f"samples_per_s {queue.get():.1f}")


if __name__ == "__main__":
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    main()
