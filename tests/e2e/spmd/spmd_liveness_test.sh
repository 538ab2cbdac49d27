#!/usr/bin/env bash
# e2e (issue 16, item 2, SPMD): under mpirun -n 2, a SIGSTOPped rank is named by its peer within
# the liveness timeout (not the 300 s collective deadline) and the job ends; a rank that is merely
# slow keeps beating and is not failed; a rank stopped before MPI_Init is named by the start-up
# watchdog and the job ends instead of hanging forever.
# Usage: spmd_liveness_test.sh <mpitrain-train>
set -uo pipefail
BIN=$1
work=$(mktemp -d)
trap 'pkill -KILL -f -- "--output-dir $work/" 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"
fail=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }
run=(mpirun -n 2 --oversubscribe -x MPITRAIN_TEST_SLEEP_AT_STEP -x MPITRAIN_TEST_STOP_BEFORE_MPI_INIT "$BIN"
     --dataset synthetic --no-progress)
# The pid of world rank $2 among the processes of the run in $work/$1.
rank_pid() {
  local p
  for p in $(pgrep -f -- "--output-dir $work/$1"); do
    tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" && { echo "$p"; return; }
  done
}
gone_within() {
  local i
  for ((i = 0; i < $2 * 10; ++i)); do pgrep -f -- "--output-dir $work/$1" >/dev/null || return 0; sleep 0.1; done
  return 1
}

# 1. SIGSTOP of rank 1 mid-training: rank 0 names it after the 4 s liveness timeout; all exit.
timeout -k 5 200 "${run[@]}" --epochs 500 --liveness-timeout 4 --output-dir "$work/stop" > stop.log 2>&1 &
d=$!
for ((i = 0; i < 900; ++i)); do [[ -s stop/checkpoints/latest ]] && break; sleep 0.1; done
victim=$(rank_pid stop 1)
t0=$SECONDS
[[ -n $victim ]] && kill -STOP "$victim"
wait $d
rc=$?
took=$((SECONDS - t0))
if [[ -n $victim && $rc -ne 0 && $rc -ne 124 && $took -le 45 ]] &&
   grep -q "rank 1 (pid $victim) has shown no sign of life for [0-9]* s: its process is stopped" stop.log; then
  ok "SIGSTOPped rank named after ${took} s, exit $rc: $(grep -o 'rank 1 (pid.*' stop.log | head -1)"
else bad "SIGSTOP: victim '$victim', exit $rc after ${took} s"; tail -20 stop.log; fi
gone_within stop 15 && ok "SIGSTOP: no process of the job is left" || bad "SIGSTOP: processes of the job are left"

# 2. Rank 1 sleeps 8 s inside step 5 with a 3 s liveness timeout: still finishes.
MPITRAIN_TEST_SLEEP_AT_STEP=1:5:8 timeout -k 5 150 "${run[@]}" --limit-train-batches 10 --liveness-timeout 3 \
  --output-dir "$work/slow" > slow.log 2>&1
rc=$?
if [[ $rc -eq 0 ]]; then ok "a rank asleep for 8 s inside a step is not failed by a 3 s liveness timeout"
else bad "slow rank: exit $rc"; tail -20 slow.log; fi

# 3. Rank 1 stops itself before MPI_Init: rank 0's start-up watchdog (5 s) names it; all exit.
t0=$SECONDS
MPITRAIN_TEST_STOP_BEFORE_MPI_INIT=1 timeout -k 5 120 "${run[@]}" --startup-timeout 5 --epochs 1 \
  --output-dir "$work/init" > init.log 2>&1
rc=$?
took=$((SECONDS - t0))
if [[ $rc -ne 0 && $rc -ne 124 && $took -le 45 ]] &&
   grep -qE "MPI start-up .* did not complete within 5 s: this job's other ranks on this node: rank 1 \(pid [0-9]+\) stopped" init.log; then
  ok "rank stopped before MPI_Init named after ${took} s, exit $rc: $(grep -o 'rank 1 (pid [0-9]*) stopped[^;,]*' init.log | head -1)"
else bad "stop before MPI_Init: exit $rc after ${took} s"; tail -20 init.log; fi
gone_within init 15 && ok "start-up stop: no process of the job is left" || bad "start-up stop: processes of the job are left"
exit $fail
