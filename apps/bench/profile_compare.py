#!/usr/bin/python3
"""`mpitrain-bench train|seed --profile`: compares two chrome traces of PyTorch's legacy profiler
(mpitrain's, written by LibTorch's RecordProfile, and PyTorch's own, by profiler_legacy.profile),
operator by operator: self time per step (an operator's time minus the operators it called) and
calls per step. Prints CSV, the operators with the largest difference first, then a total row.
Usage: profile_compare.py OURS.trace.json THEIRS.trace.json STEPS [ROWS]"""
import collections
import json
import sys


def events(path):
    with open(path) as f:
        data = json.load(f)
    if isinstance(data, dict):
        data = data.get("traceEvents", [])
    return [e for e in data if e.get("ph") == "X" and "dur" in e]


def self_times(evs):
    """{name: [self_us, calls]}: each event's duration less that of the events nested in it on its thread."""
    out = collections.defaultdict(lambda: [0.0, 0])
    by_thread = collections.defaultdict(list)
    for e in evs:
        by_thread[e.get("tid")].append((float(e["ts"]), float(e["dur"]), e["name"]))
    for items in by_thread.values():
        items.sort(key=lambda t: (t[0], -t[1]))  # parents before the children they contain
        stack = []  # [end, name, child_us]

        def close(entry):
            out[entry[1]][0] += entry[3] - entry[2]

        for ts, dur, name in items:
            while stack and ts >= stack[-1][0]:
                close(stack.pop())
            if stack:
                stack[-1][2] += dur
            stack.append([ts + dur, name, 0.0, dur])
            out[name][1] += 1
        while stack:
            close(stack.pop())
    return out


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    ours, theirs = self_times(events(sys.argv[1])), self_times(events(sys.argv[2]))
    steps = int(sys.argv[3])
    rows = int(sys.argv[4]) if len(sys.argv) > 4 else 25
    if not ours or not theirs:
        sys.exit("profile_compare.py: a trace holds no events (%s)" % (sys.argv[1] if not ours else sys.argv[2]))
    names = set(ours) | set(theirs)
    ms = lambda table, n: table[n][0] / steps / 1e3 if n in table else 0.0
    calls = lambda table, n: table[n][1] / steps if n in table else 0.0
    ranked = sorted(names, key=lambda n: -abs(ms(ours, n) - ms(theirs, n)))
    print("# self time per step of each operator (ms), mpitrain-1 vs torch-1, the largest differences first")
    print("op,mpitrain_ms,torch_ms,diff_ms,mpitrain_calls,torch_calls")
    for n in ranked[:rows]:
        print('"%s",%.3f,%.3f,%+.3f,%.1f,%.1f' % (n, ms(ours, n), ms(theirs, n), ms(ours, n) - ms(theirs, n),
                                                  calls(ours, n), calls(theirs, n)))
    a, b = sum(ms(ours, n) for n in names), sum(ms(theirs, n) for n in names)
    print('"(all operators)",%.3f,%.3f,%+.3f,%.1f,%.1f' % (a, b, a - b, sum(calls(ours, n) for n in names),
                                                         sum(calls(theirs, n) for n in names)))
    print("# profiled time mpitrain-1 / torch-1: %.3f" % (a / b))


if __name__ == "__main__":
    main()
