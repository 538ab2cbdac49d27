#!/usr/bin/env bash
# e2e: bad launch input on the command line -> one line on stderr naming the problem, exit 2.
set -uo pipefail
BIN=$1
fail=0
expect() {  # expect <text> -- args...
  local want=$1; shift 2
  local err rc lines
  err=$("$BIN" "$@" 2>&1 >/dev/null); rc=$?
  lines=$(printf '%s\n' "$err" | grep -c .)
  if [[ $rc -ne 2 || $err != *"$want"* || $lines -ne 1 ]]; then
    echo "FAIL: $* -> exit $rc, $lines line(s): $err (wanted exit 2, one line with '$want')"; fail=1
  else
    echo "ok: $* -> $err"
  fi
}
expect "unknown entry point 'nope' (registered: work)" -- --entry nope
expect "num_workers must be at least 1 (got 0)" -- --workers 0
expect "num_workers must be at least 1 (got -2)" -- --workers -2
expect "the argument ('x') for option '--workers' is invalid" -- --workers x
exit $fail
