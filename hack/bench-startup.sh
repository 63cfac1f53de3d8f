#!/usr/bin/env bash
# Measures what a user feels on every `kubectl mesh ...`: process start-up time and peak RSS of
# `kubectl-mesh version`, beside a baseline plugin that links only client-go, cli-runtime and
# cobra (hack/startup-baseline), timed in the same run so machine load affects both alike.
# Uses hyperfine when installed (apt-get install hyperfine), else a loop timed with date; peak
# RSS comes from GNU time (/usr/bin/time -v, package "time").
set -euo pipefail
bin=${1:-bin/kubectl-mesh}
base=${BASELINE:-bin/startup-baseline}
runs=${RUNS:-100}
go build -trimpath -ldflags '-s -w' -o "$base" ./hack/startup-baseline
"$bin" version >/dev/null
if command -v hyperfine >/dev/null; then
  hyperfine --warmup 10 --runs "$runs" -N --style basic "$bin version" "$base version"
else
  for b in "$bin" "$base"; do
    start=$(date +%s%N)
    for _ in $(seq "$runs"); do "$b" version >/dev/null; done
    end=$(date +%s%N)
    echo "$b version: $(( (end - start) / runs / 1000 )) µs mean over $runs runs (hyperfine not installed)"
  done
fi
for b in "$bin" "$base"; do
  if [ -x /usr/bin/time ]; then
    max=0
    for _ in $(seq 10); do
      kb=$( { /usr/bin/time -v "$b" version >/dev/null; } 2>&1 | awk -F': ' '/Maximum resident set size/ {print $2}')
      (( kb > max )) && max=$kb
    done
    echo "$b version: peak RSS $(( max / 1024 )) MiB ($max KiB, worst of 10 runs, /usr/bin/time -v)"
  else
    echo "peak RSS: /usr/bin/time not installed (apt-get install time)"
  fi
done
