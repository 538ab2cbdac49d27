#!/usr/bin/env bash
# e2e: under mpirun -n 2, the last rank hangs or dies mid-job; the job must end non-zero within
# the 3 s collective deadline (+ start-up), the surviving rank naming the collective it waited in.
set -uo pipefail
BIN=$1
fail=0
for how in hang die; do
  start=$(date +%s.%N)
  out=$(timeout -k 5 60 mpirun -n 2 --oversubscribe "$BIN" "$how" 2>&1); rc=$?
  secs=$(echo "$(date +%s.%N) - $start" | bc)
  echo "[$how] exit $rc after ${secs}s"
  echo "$out" | grep -E "mpitrain: rank|did not complete|exited on signal" | head -3
  if [[ $rc -eq 0 ]]; then echo "FAIL [$how]: exit code 0"; fail=1; fi  # (a timeout shows as > 30 s below)
  if (( $(echo "$secs > 30" | bc) )); then echo "FAIL [$how]: took ${secs}s"; fail=1; fi
  if [[ $how == hang && $out != *"rank 0: allreduce #"*"did not complete within the deadline of 3.000 s"* ]]; then
    echo "FAIL [$how]: rank 0 did not name the collective"; fail=1
  fi
done
exit $fail
