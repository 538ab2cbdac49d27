#!/usr/bin/python3
"""Baseline for `mpitrain-bench spawn`: torch.multiprocessing.spawn of N workers, each with an
initialised gloo process group (TCP on loopback). Prints the wall-clock time (CLOCK_REALTIME,
seconds since the epoch) at which every worker was ready, so the caller can subtract the time
at which it started this interpreter."""
import os
import sys
import time


def worker(rank, world, port, queue):
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    dist.barrier()
    if rank == 0:
        queue.put(time.time())
    dist.destroy_process_group()


def main():
    world = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 29517
    import torch.multiprocessing as mp
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.spawn(worker, args=(world, port, queue), nprocs=world, join=True)
    print(f"ready_at {queue.get():.6f}")


if __name__ == "__main__":
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    main()
