#!/usr/bin/env bash
# e2e: bad command lines of mpitrain-bench give a one-line error naming the problem and exit 2.
set -uo pipefail
BENCH=$1
fail=0
expect() {  # expect <exit code> <text in stderr> -- args...
  local want_rc=$1 want_text=$2; shift 3
  local err rc
  err=$("$BENCH" "$@" 2>&1 >/dev/null); rc=$?
  if [[ $rc -ne $want_rc || $err != *"$want_text"* ]]; then
    echo "FAIL: mpitrain-bench $* -> exit $rc, stderr: $err (wanted exit $want_rc and '$want_text')"; fail=1
  else
    echo "ok: mpitrain-bench $* -> exit $rc: $err"
  fi
}
expect 2 "bad size suffix in '12Q'" -- allreduce --max-bytes 12Q
expect 2 "unknown method 'fast'" -- allreduce --methods mpi,fast
expect 2 "need 4 <= --min-bytes <= --max-bytes" -- allreduce --min-bytes 1M --max-bytes 4K
expect 2 "unrecognised option '--bogus'" -- allreduce --bogus
expect 2 "unknown benchmark 'allgather'" -- allgather
expect 2 "usage: mpitrain-bench" --
expect 2 "allreduce runs on the ranks of an MPI job" -- allreduce
expect 2 "unrecognised option '--fast'" -- spawn --fast
expect 2 "--size-mb and --runs must be at least 1" -- ckpt --size-mb 0
expect 2 "--strategies must start with ddp" -- memory --strategies sharded1
expect 2 "unknown strategy 'zero3'" -- memory --strategies ddp,zero3
expect 2 "--ranks: 'x' is not a rank count" -- memory --ranks 1,x
expect 2 "--hidden: '0' is not a positive width" -- memory --hidden 0
expect 2 "--dir /nonexistent is not a directory" -- ckpt --dir /nonexistent
expect 2 "engine runs on the ranks of an MPI job" -- engine
expect 2 "case '100y4K' is not TENSORSxSIZE" -- engine --cases 100y4K
expect 2 "must be positive" -- engine --windows 0
expect 2 "take contiguous or channels_last (got 'nchw')" -- seed --memory-format nchw
expect 2 "take contiguous or channels_last (got 'nhwc')" -- train --torch-memory-format nhwc
expect 2 "--memory-formats takes contiguous and/or channels_last (got 'nchw')" -- adam --memory-formats nchw
expect 2 "--steps, --repeats and --threads must be at least 1" -- adam --steps 0
expect 2 "unknown model 'vgg' (expected mlp" -- adam --model vgg
expect 1 "mpitrain's Adam differs from torch's by" -- adam --steps 5 --repeats 1 --warmup 0 --tolerance 1e-12 --memory-formats contiguous
help=$("$BENCH" engine --help) || { echo "FAIL: engine --help exited non-zero"; fail=1; }
for col in case method step_us vs_separate cache_hit_rate round_trips_per_step cycles_per_step check separate_mpi fused_mpi zero_copy engine_shared; do
  [[ $help == *"$col"* ]] || { echo "FAIL: engine --help does not explain $col"; fail=1; }
done
help=$("$BENCH" adam --help) || { echo "FAIL: adam --help exited non-zero"; fail=1; }
for col in case memory_format elements step_ms vs_torch max_abs_diff; do
  [[ $help == *"$col"* ]] || { echo "FAIL: adam --help does not explain column $col"; fail=1; }
done
help=$("$BENCH" allreduce --help) || { echo "FAIL: --help exited non-zero"; fail=1; }
for col in size_bytes method time_us algbw_GBps busbw_GBps vs_mpi check; do
  [[ $help == *"$col"* ]] || { echo "FAIL: --help does not explain column $col"; fail=1; }
done
help=$("$BENCH" memory --help) || { echo "FAIL: memory --help exited non-zero"; fail=1; }
for col in strategy ranks params state_MB state_formula grad_MB grad_formula rss_MB pss_MB samples_per_s state_vs_ddp grad_vs_ddp rss_saving_vs_state_saving pss_saving_vs_state_saving speed_vs_ddp; do
  [[ $help == *"$col"* ]] || { echo "FAIL: memory --help does not explain column $col"; fail=1; }
done
help=$("$BENCH" allreduce --help) || { echo "FAIL: --help exited non-zero"; fail=1; }
for m in rs_mpi rs_user rs_zero_copy ag_mpi ag_user ag_zero_copy; do
  [[ $help == *"$m"* ]] || { echo "FAIL: allreduce --help does not explain method $m"; fail=1; }
done
help=$("$BENCH" ckpt --help) || { echo "FAIL: ckpt --help exited non-zero"; fail=1; }
for col in case op bytes median_s MBps vs_dd; do
  [[ $help == *"$col"* ]] || { echo "FAIL: ckpt --help does not explain column $col"; fail=1; }
done
exit $fail
