#!/usr/bin/env bash
# e2e (issue 16, item 2, spawn mode): a stopped worker is named within the liveness timeout and
# the job ends; a worker that is merely slow (sleeping inside a step) keeps beating and is not
# failed; a worker stopped during start-up is named by the start-up watchdog or the liveness check.
# Usage: hung_rank_test.sh <mpitrain-train>
set -uo pipefail
BIN=$1
work=$(mktemp -d)
trap 'pkill -KILL -f -- "--output-dir $work/" 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"
fail=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }
base=(--dataset synthetic --no-progress --workers 2)
workers_of() { pgrep -f -- "--mpitrain-worker=mpitrain-$1-"; }
gone_within() {
  local i
  for ((i = 0; i < $2 * 10; ++i)); do pgrep -f -- "mpitrain-$1-" >/dev/null || return 0; sleep 0.1; done
  return 1
}

# 1. SIGSTOP of a worker mid-training: named within the liveness timeout (4 s here, 30 s by default).
"$BIN" "${base[@]}" --epochs 500 --liveness-timeout 4 --output-dir "$work/stop" > stop.log 2>&1 &
d=$!
for ((i = 0; i < 600; ++i)); do [[ -s stop/checkpoints/latest ]] && break; sleep 0.1; done
victim=$(workers_of $d | tail -1)
t0=$SECONDS
kill -STOP "$victim"
wait $d
rc=$?
took=$((SECONDS - t0))
if [[ $rc -eq 1 && $took -le 45 ]] && grep -q "has sent nothing for .* stopped or hung" stop.log; then
  ok "SIGSTOPped worker named after ${took} s: $(grep -o 'rank [0-9]*: worker process.*' stop.log | head -1)"
else bad "SIGSTOP: exit $rc after ${took} s"; cat stop.log; fi
gone_within $d 10 && ok "SIGSTOP: no process of the job is left" || bad "SIGSTOP: processes of the job are left"

# 2. A slow worker (sleeps 8 s inside step 5) with a 3 s liveness timeout still finishes.
MPITRAIN_TEST_SLEEP_AT_STEP=1:5:8 timeout -k 5 120 "$BIN" "${base[@]}" --limit-train-batches 10 --liveness-timeout 3 \
  --output-dir "$work/slow" > slow.log 2>&1
rc=$?
if [[ $rc -eq 0 ]]; then ok "a worker asleep for 8 s inside a step is not failed by a 3 s liveness timeout"
else bad "slow worker: exit $rc"; cat slow.log; fi

# 3. A worker stopped as soon as it exists (start-up): named, and the job ends.
"$BIN" "${base[@]}" --epochs 5 --liveness-timeout 4 --startup-timeout 6 --output-dir "$work/early" > early.log 2>&1 &
d=$!
victim=
for ((i = 0; i < 1000; ++i)); do victim=$(workers_of $d | head -1); [[ -n $victim ]] && break; sleep 0.01; done
t0=$SECONDS
[[ -n $victim ]] && kill -STOP "$victim"
wait $d
rc=$?
took=$((SECONDS - t0))
if [[ -n $victim && $rc -ne 0 && $took -le 45 ]] && grep -qE "never connected|stopped or hung" early.log; then
  ok "worker stopped at start-up: exit $rc after ${took} s: $(grep -oE '(only|rank).*(never connected|stopped or hung)[^;]*' early.log | head -1)"
else bad "start-up stop: victim '$victim', exit $rc after ${took} s"; cat early.log; fi
gone_within $d 10 && ok "start-up stop: no process of the job is left" || bad "start-up stop: processes of the job are left"
exit $fail
