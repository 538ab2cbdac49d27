#!/usr/bin/env bash
# e2e for mpitrain-sweep run (in one allocation): the seed example's space runs 8 trials 2 at a
# time and prints the best config, the same seed gives the same best config; ASHA on a space
# where half the learning rates diverge stops most divergent trials early and finds FIFO's best
# with fewer trial-epochs; a sweep whose driver is SIGKILLed midway resumes with every trial run
# exactly once to its end; bad input is one line, exit 2, before any trial starts; the scheduling
# overhead (sweep wall time vs sum of trial wall times / slots) is printed.
# Usage: sweep_test.sh <mpitrain-sweep>
set -uo pipefail
SWEEP=$(realpath "$1")
work=$(mktemp -d)
trap 'pkill -KILL -f "$work" 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"
fail=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }
tiny=(--dataset synthetic --limit-train-batches 4 --limit-val-batches 2)

cat > seed.json <<'J'
{"layer_1": {"choice": [32, 64, 128]}, "layer_2": {"choice": [64, 128, 256]},
 "lr": {"loguniform": [1e-4, 1e-1]}, "batch_size": {"choice": [32, 64, 128]}}
J
# 1. The seed space, 8 trials, 2 at a time, twice with the same seed.
for d in a b; do
  timeout -k 5 300 "$SWEEP" run --space seed.json --dir $d --num-samples 8 --metric val_loss --mode min --slots 2 \
    --seed 5 -- "${tiny[@]}" --epochs 2 > $d.log 2>&1 || { bad "sweep $d exited $?"; cat $d.log; }
done
rows=$(($(wc -l < a/results.csv) - 1))
[[ $rows -eq 8 && $(grep -c ',finished,' a/results.csv) -eq 8 ]] && ok "8 trials finished" || { bad "results: $rows rows"; cat a/results.csv; }
best_a=$(grep '^Best config' a.log); best_b=$(grep '^Best config' b.log)
[[ -n $best_a && $best_a == "$best_b" ]] && ok "same seed, same best: $best_a" || bad "best configs differ: '$best_a' vs '$best_b'"
"$SWEEP" collect a > collect.log 2>&1 && grep -q "^$best_a" collect.log && ok "collect prints the best config" || { bad "collect"; cat collect.log; }
# Scheduling overhead: sweep wall time against the sum of the trials' wall times over 2 slots.
/usr/bin/python3 - a.log <<'PY' || fail=1
import re, sys
m = re.search(r"sweep ([0-9.]+) s, trials ([0-9.]+) s", open(sys.argv[1]).read())
sweep, trials = float(m.group(1)), float(m.group(2))
print(f"ok: scheduling: sweep {sweep:.1f} s vs trials {trials:.1f} s / 2 slots = {sweep / (trials / 2):.3f}")
PY

# 2. ASHA on divergent learning rates, against FIFO on the same trials (NaN losses train on),
# on Fashion-MNIST (learnable in a few batches, so trials rank by their learning rate, not noise).
cat > diverge.json <<'J'
{"lr": {"loguniform": [1e-3, 30]}, "momentum": 0.9, "layer_1": 64, "layer_2": 64}
J
learn=(--limit-train-batches 15 --limit-val-batches 4 --batch-size 64)
for s in fifo asha; do
  timeout -k 5 600 "$SWEEP" run --space diverge.json --dir $s --num-samples 12 --metric val_loss --mode min --slots 2 \
    --seed 3 --scheduler $s --max-t 4 --grace-period 1 --reduction-factor 2 -- "${learn[@]}" --epochs 4 --allow-nonfinite-loss \
    > $s.log 2>&1 || { bad "$s sweep exited $?"; cat $s.log; }
  grep 'trial-epochs' $s.log
done
/usr/bin/python3 - fifo/results.json asha/results.json fifo.log asha.log <<'PY' || fail=1
import json, math, re, sys
fifo, asha = (json.load(open(p)) for p in sys.argv[1:3])
val = lambda r: float(r["last"].get("val_loss", "nan")) if isinstance(r["last"].get("val_loss"), (int, float)) else math.nan
# Divergent: FIFO's final val_loss is not finite or worse than chance (ln 10 = 2.30).
div = {r["trial"] for r in fifo if not math.isfinite(val(r)) or val(r) > 2.4}
stopped = {r["trial"] for r in asha if r["status"] == "stopped"}
early = len(div & stopped) / max(1, len(div))
epochs = [int(re.search(r"(\d+) trial-epochs", open(p).read()).group(1)) for p in sys.argv[3:5]]
best = lambda rs: min((r for r in rs if math.isfinite(val(r))), key=val)["trial"]
print(f"ASHA: {len(div)} divergent trials, {len(div & stopped)} stopped early ({early:.0%}); "
      f"trial-epochs FIFO {epochs[0]}, ASHA {epochs[1]}; best FIFO {best(fifo)}, ASHA {best(asha)}")
ok = len(div) > 0 and early >= 0.5 and best(fifo) == best(asha) and epochs[1] < epochs[0]
print(("ok" if ok else "FAIL") + ": ASHA stops >= 50% of divergent trials early and keeps FIFO's best")
sys.exit(0 if ok else 1)
PY

# 3. SIGKILL the driver midway; the restarted sweep finishes every trial exactly once.
slow=(--dataset synthetic --limit-train-batches 30 --limit-val-batches 2 --epochs 3)
"$SWEEP" run --space seed.json --dir k --num-samples 6 --metric val_loss --slots 2 --seed 9 -- "${slow[@]}" > k1.log 2>&1 &
driver=$!
for _ in $(seq 100); do [[ $(grep -c ' finished' k1.log) -ge 1 ]] && break; sleep 0.2; done
kill -KILL $driver; wait $driver 2>/dev/null
done_before=$(grep -c ' finished' k1.log)
timeout -k 5 300 "$SWEEP" run --space seed.json --dir k --num-samples 6 --metric val_loss --slots 2 --seed 9 -- "${slow[@]}" \
  > k2.log 2>&1 || { bad "restarted sweep exited $?"; cat k2.log; }
/usr/bin/python3 - k <<'PY' || fail=1
import json, os, sys
d = sys.argv[1]
bad = []
for t in sorted(os.listdir(f"{d}/trials")):
    log = open(f"{d}/trials/{t}/trial.log").read()
    ends = log.count("mpitrain-train: {")  # the summary line of a run that reached its end
    epochs = [json.loads(l)["epoch"] for l in open(f"{d}/trials/{t}/progress.jsonl")]
    status = json.load(open(f"{d}/trials/{t}/status.json"))["status"]
    if ends != 1 or sorted(set(epochs)) != [1, 2, 3] or status != "finished":
        bad.append(f"{t}: {ends} ends, epochs {epochs}, {status}")
print(("FAIL: " + "; ".join(bad)) if bad else "ok: after SIGKILL and restart every trial ran once to its end")
sys.exit(1 if bad else 0)
PY
echo "   ($done_before trial(s) had finished before the kill; $(grep -c 'running' k2.log) (re)started after)"

# 3b. A trial that ran to its end while its driver was killed (status still "running") is recorded,
#     not run again: its result.json says it finished.
/usr/bin/python3 -c "import json; json.dump({'status': 'running', 'pid': 999999, 'wall_s': 1.0}, open('a/trials/t0000/status.json', 'w'))"
timeout -k 5 120 "$SWEEP" run --space seed.json --dir a --num-samples 8 --metric val_loss --mode min --slots 2 --seed 5 \
  -- "${tiny[@]}" --epochs 2 > a2.log 2>&1
grep -q "8 trials, 0 to run" a2.log && grep -q '"finished"' a/trials/t0000/status.json \
  && ok "a finished trial whose driver died before recording it is not rerun" || { bad "finished trial rerun"; cat a2.log; }

# 4. Bad input: one line, exit 2, before any trial starts.
expect2() {  # expect2 <text> <dir> args...
  local want=$1 dir=$2; shift 2
  local err rc
  err=$("$SWEEP" run --dir "$dir" "$@" 2>&1 >/dev/null); rc=$?
  if [[ $rc -eq 2 && $(printf '%s\n' "$err" | grep -c .) -eq 1 && $err == *"$want"* && ! -d $dir/trials ]]; then ok "$want -> exit 2"
  else bad "$* -> exit $rc: $err (wanted exit 2 and one line with '$want', no trials)"; fi
}
echo '{"lr": {"lognormal": [1, 2]}}' > s1.json
echo '{"lr": {"uniform": [0.2, 0.1]}}' > s2.json
echo '{"layer_1": {"choice": []}}' > s3.json
printf '{\n "lr": {"uniform": [0.1, 0.2]},\n "x": [1,, 2]\n}\n' > s4.json
expect2 "unknown distribution 'lognormal'" e1 --space s1.json --metric val_loss
expect2 "uniform low > high" e2 --space s2.json --metric val_loss
expect2 "choice needs a non-empty list" e3 --space s3.json --metric val_loss
expect2 "s4.json:3:" e4 --space s4.json --metric val_loss
expect2 "a trial needs 4 workers x 1 CPUs = 4 slots, the allocation has 2" e5 --space seed.json --metric val_loss --workers-per-trial 4 --slots 2
expect2 "metric 'val_f1' is never reported" e6 --space seed.json --metric val_f1
expect2 "--output-dir is set by the sweep" e7 --space seed.json --metric val_loss -- --output-dir x
expect2 "trial options rejected by mpitrain-train: option '--epochs' cannot be specified more than once" e8 \
  --space seed.json --metric val_loss -- --epochs 1 --epochs 2
exit $fail
