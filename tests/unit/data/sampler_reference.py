#!/usr/bin/python3
"""Prints torch.utils.data.DistributedSampler's indices for each config given on stdin (one JSON
list [size, replicas, rank, shuffle, seed, epoch, drop_last] per line), one JSON list per line."""
import json
import sys

from torch.utils.data import DistributedSampler

for line in sys.stdin:
    size, replicas, rank, shuffle, seed, epoch, drop_last = json.loads(line)
    s = DistributedSampler(range(size), num_replicas=replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last)
    s.set_epoch(epoch)
    print(json.dumps(list(s)))
