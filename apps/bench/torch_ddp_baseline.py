#!/usr/bin/python3
"""Baseline for `mpitrain-bench train`: PyTorch DDP (gloo, loopback) on the same MLP
784-1024-1024-10, batch B per rank, 1 intra-op thread per rank, SGD. Prints
`samples_per_s <value>` (all ranks, steady state after warm-up)."""
import os
import sys
import time


def worker(rank, world, port, steps, warmup, batch, queue):
    import torch
    import torch.distributed as dist
    import torch.nn as nn
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10))
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 784)
    y = torch.randint(0, 10, (batch,))
    loss_fn = nn.CrossEntropyLoss()
    for i in range(warmup + steps):
        if i == warmup:
            dist.barrier()
            t0 = time.perf_counter()
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    dt = torch.tensor([time.perf_counter() - t0])
    dist.all_reduce(dt, op=dist.ReduceOp.MAX)
    if rank == 0:
        queue.put(steps * batch * world / dt.item())
    dist.destroy_process_group()


def main():
    world, port, steps, warmup, batch = (int(a) for a in sys.argv[1:6])
    import torch.multiprocessing as mp
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.spawn(worker, args=(world, port, steps, warmup, batch, queue), nprocs=world, join=True)
    print(f"samples_per_s {queue.get():.1f}")


if __name__ == "__main__":
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    main()
