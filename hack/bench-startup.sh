#!/usr/bin/env bash
# Measures what a user feels on every `kubectl mesh ...`: process start-up time and peak RSS of
# `kubectl-mesh version`. Uses hyperfine when installed (apt-get install hyperfine), else a loop
# of runs timed with date; peak RSS comes from GNU time (/usr/bin/time -v, package "time").
set -euo pipefail
bin=${1:-bin/kubectl-mesh}
runs=${RUNS:-50}
"$bin" version >/dev/null
if command -v hyperfine >/dev/null; then
  hyperfine --warmup 5 --runs "$runs" -N --style basic "$bin version"
else
  start=$(date +%s%N)
  for _ in $(seq "$runs"); do "$bin" version >/dev/null; done
  end=$(date +%s%N)
  echo "start-up: $(( (end - start) / runs / 1000 )) µs mean over $runs runs of '$bin version' (hyperfine not installed)"
fi
if [ -x /usr/bin/time ]; then
  max=0
  for _ in $(seq 10); do
    kb=$( { /usr/bin/time -v "$bin" version >/dev/null; } 2>&1 | awk -F': ' '/Maximum resident set size/ {print $2}')
    (( kb > max )) && max=$kb
  done
  echo "peak RSS: $(( max / 1024 )) MiB ($max KiB, worst of 10 runs, /usr/bin/time -v)"
else
  echo "peak RSS: /usr/bin/time not installed (apt-get install time)"
fi
