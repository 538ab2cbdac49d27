#!/usr/bin/env bash
# e2e (issue 16, item 1): a spawn-mode job never outlives its driver. SIGTERM / SIGINT to the
# driver become checkpoint-and-stop of the job (exit 75; --resume auto continues); SIGKILL of the
# driver, at start-up or mid-training, ends every process of its job within seconds; a second
# SIGINT stops at once. Usage: driver_signals_test.sh <mpitrain-train>
set -uo pipefail
BIN=$1
work=$(mktemp -d)
trap 'pkill -KILL -f -- "--output-dir $work/" 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"
fail=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }
base=(--dataset synthetic --checkpoint-every-n-steps 20 --no-progress --workers 2)
long=("${base[@]}" --epochs 200)
orted_before=" $(pgrep -x orted | tr '\n' ' ') "

# The job's processes: the leader and the workers carry the driver's channel name
# ("mpitrain-<driver pid>-...") in their arguments; Open MPI's daemons are the new orted processes.
job_alive() {
  pgrep -f -- "mpitrain-$1-" >/dev/null && return 0
  local p
  for p in $(pgrep -x orted); do [[ $orted_before == *" $p "* ]] || return 0; done  # a daemon started since
  return 1
}
# gone_within PID SECONDS: true once nothing of the job is left
gone_within() {
  local i
  for ((i = 0; i < $2 * 10; ++i)); do job_alive "$1" || return 0; sleep 0.1; done
  return 1
}
wait_for_checkpoint() {  # until the run has written its first checkpoint (training is under way)
  local i
  for ((i = 0; i < 600; ++i)); do [[ -s $1/checkpoints/latest ]] && return 0; sleep 0.1; done
  return 1
}

# 1. SIGTERM mid-training: the workers checkpoint at the next step, the driver exits 75, the job is
#    gone, and --resume auto continues from that checkpoint.
"$BIN" "${long[@]}" --output-dir "$work/term" > term.log 2>&1 &
d=$!
wait_for_checkpoint term || bad "term: no checkpoint within 60 s"
kill -TERM $d
wait $d
rc=$?
if [[ $rc -eq 75 ]] && grep -q "stopped by signal 15 after checkpoint" term.log; then ok "SIGTERM -> exit 75: $(grep 'stopped by signal' term.log)"
else bad "SIGTERM -> exit $rc"; cat term.log; fi
gone_within $d 10 && ok "SIGTERM: no process of the job is left" || bad "SIGTERM: the job outlived its driver"
ckpt=$(cat term/checkpoints/latest)
timeout -k 5 120 "$BIN" "${base[@]}" --epochs 1 --output-dir "$work/term" --resume auto > resume.log 2>&1
rc=$?
if [[ $rc -eq 0 ]] && grep -q "resuming from .*/$ckpt" resume.log; then ok "--resume auto continues from $(basename "$ckpt")"
else bad "resume after SIGTERM: exit $rc"; cat resume.log; fi

# 2. SIGKILL mid-training: nothing can be saved, but nothing survives either (no orphan goes on
#    writing checkpoints and moving `latest`).
"$BIN" "${long[@]}" --output-dir "$work/kill" > kill.log 2>&1 &
d=$!
wait_for_checkpoint kill || bad "kill: no checkpoint within 60 s"
kill -KILL $d
wait $d 2>/dev/null
if gone_within $d 10; then ok "SIGKILL mid-training: the job is gone"; else bad "SIGKILL mid-training: the job outlived its driver"; fi
latest=$(cat kill/checkpoints/latest)
sleep 2
[[ $(cat kill/checkpoints/latest) == "$latest" ]] && ok "nothing writes checkpoints after the driver died" || bad "latest moved after the driver died"

# 3. SIGKILL at start-up (the leader spawning, workers starting).
for delay in 0.2 0.8; do
  "$BIN" "${long[@]}" --output-dir "$work/early" > early.log 2>&1 &
  d=$!
  sleep $delay
  kill -KILL $d
  wait $d 2>/dev/null
  if gone_within $d 10; then ok "SIGKILL after ${delay} s: the job is gone"; else bad "SIGKILL after ${delay} s: the job outlived its driver"; fi
done

# 4. Two SIGINTs (Ctrl-C twice): the second stops at once, the driver dies of it. (A background
#    job of a script starts with SIGINT ignored, which the driver honours: exec it with SIGINT reset.)
/usr/bin/python3 -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])' \
  "$BIN" "${long[@]}" --output-dir "$work/int" > int.log 2>&1 &
d=$!
wait_for_checkpoint int || bad "int: no checkpoint within 60 s"
kill -INT $d
sleep 0.05  # two signals sent at once may merge into one (standard signals do not queue)
kill -INT $d
wait $d
rc=$?
if [[ $rc -eq 130 ]]; then ok "SIGINT twice -> stopped at once (exit $rc)"; else bad "SIGINT twice -> exit $rc"; cat int.log; fi
gone_within $d 10 && ok "SIGINT twice: no process of the job is left" || bad "SIGINT twice: the job outlived its driver"
# 3b. SIGTERM at start-up, as soon as the job's leader exists (workers not yet connected): the
#     stop goes out with each worker's task, so they checkpoint after their first step and the
#     driver exits 75; --resume auto continues from that checkpoint.
"$BIN" "${long[@]}" --output-dir "$work/termearly" > termearly.log 2>&1 &
d=$!
for ((i = 0; i < 3000; ++i)); do pgrep -f -- "mpitrain-leader .* mpitrain-$d-" >/dev/null && break; sleep 0.01; done
kill -TERM $d
wait $d
rc=$?
if [[ $rc -eq 75 ]] && grep -q "stopped by signal 15 after checkpoint .*step=1\.h5" termearly.log; then
  ok "SIGTERM at start-up -> exit 75: $(grep 'stopped by signal' termearly.log)"
else bad "SIGTERM at start-up -> exit $rc"; cat termearly.log; fi
gone_within $d 10 && ok "SIGTERM at start-up: no process of the job is left" || bad "SIGTERM at start-up: the job outlived its driver"
timeout -k 5 120 "$BIN" "${base[@]}" --epochs 1 --limit-train-batches 5 --output-dir "$work/termearly" --resume auto > termearly2.log 2>&1
rc=$?
[[ $rc -eq 0 ]] && grep -q "resuming from .*step=1\.h5" termearly2.log && ok "--resume auto after a start-up SIGTERM continues from step 1" ||
  { bad "resume after a start-up SIGTERM: exit $rc"; cat termearly2.log; }

# 5. SIGKILL of the job's leader: the failure names the leader, not a worker; nothing is left.
"$BIN" "${long[@]}" --output-dir "$work/leader" > leader.log 2>&1 &
d=$!
wait_for_checkpoint leader || bad "leader: no checkpoint within 60 s"
kill -KILL "$(pgrep -f -- "mpitrain-leader .* mpitrain-$d-")"
wait $d
rc=$?
if [[ $rc -eq 1 ]] && grep -q "the job's leader (mpitrain-leader, pid [0-9]*) was killed by signal 9" leader.log; then
  ok "leader SIGKILLed -> $(grep -o "the job's leader[^;]*" leader.log | head -1)"
else bad "leader SIGKILLed -> exit $rc"; cat leader.log; fi
gone_within $d 10 && ok "leader SIGKILLed: no process of the job is left" || bad "leader SIGKILLed: the job outlived it"
exit $fail
