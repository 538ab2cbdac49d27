#!/usr/bin/env bash
# e2e (issue 13): the C++ Tuner over a program's own Module: 4 grid trials on 2 slots, one failing
# on purpose (recorded, not fatal), a checkpoint with every report, the best config; a rerun on
# the same directory runs nothing again and, on a terminal, draws the live status table; ASHA
# through the Tuner completes.
# Usage: tuner_test.sh <tuner_sweep>
set -uo pipefail
BIN=$1
work=$(mktemp -d)
trap 'pkill -KILL -f -- "$work/" 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"
fail=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }

timeout -k 5 240 "$BIN" "$work/fifo" > fifo.log 2>&1
rc=$?
cat fifo.log | grep -E "^(tuner|Best|trial)"
if [[ $rc -eq 0 ]] && grep -q "^tuner: 4 trials, 1 failed" fifo.log; then ok "4 trials, the failing one recorded"
else bad "fifo sweep: exit $rc"; tail -30 fifo.log; fi
grep -q '^Best config: {"hidden":[0-9]*,"lr":0.3}' fifo.log && ok "best config has lr 0.3" || bad "best config"
grep -E "^trial .* failed .*fails on purpose" fifo.log | grep -q '' && ok "failed trial's error recorded" ||
  bad "failed trial's error missing"
n=0
while read -r line; do
  [[ $line =~ iterations=3\ last_checkpoint=([^ ]+) ]] || continue
  [[ -f ${BASH_REMATCH[1]} ]] && n=$((n + 1))
done < <(grep -E "^trial .* finished" fifo.log)
[[ $n -eq 3 ]] && ok "3 finished trials, 3 reports each, last report's checkpoint on disk" ||
  bad "finished trials with 3 reports and a checkpoint: $n of 3"
[[ $(wc -l < fifo/results.csv) -eq 5 ]] && ok "results.csv: header + 4 rows" || bad "results.csv"

# Rerun on the same directory, on a pseudo-terminal: nothing runs again, the table is drawn.
timeout -k 5 120 script -qec "$BIN $work/fifo" /dev/null > again.log 2>&1
rc=$?
if [[ $rc -eq 0 ]] && grep -q "0 to run" again.log && grep -q "== Status == .*0 running, 0 pending, 3 finished, 0 stopped, 1 failed" again.log &&
   grep -q "^t0003 " again.log; then ok "rerun: nothing run again; live table drawn on a terminal"
else bad "rerun: exit $rc"; cat again.log; fi

timeout -k 5 240 "$BIN" "$work/asha" asha > asha.log 2>&1
rc=$?
if [[ $rc -eq 0 ]] && grep -q "^tuner: 4 trials, 1 failed" asha.log; then
  ok "ASHA through the Tuner: $(grep -cE '^trial .* stopped' asha.log) stopped early, best $(grep '^Best config' asha.log)"
else bad "asha sweep: exit $rc"; tail -30 asha.log; fi
exit $fail
