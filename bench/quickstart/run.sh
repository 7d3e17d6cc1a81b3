#!/usr/bin/env bash
# Runs the quickstart sweeps (`make quickstart`): each sweep as two shards side by side, one libtorch
# thread each (on a 2-core machine that trains about 1.7 times faster than one process with two
# threads: the steps are small), then its report. Exits non-zero if a shard fails.
#   bash bench/quickstart/run.sh HARNESS NAME...      (configs/NAME.yaml into results/NAME/)
set -euo pipefail
H=$1; shift
start=$(date +%s)
for name in "$@"; do
  OMP_NUM_THREADS=1 "$H" sweep "configs/$name.yaml" --results "results/$name" --shard 0/2 & first=$!
  OMP_NUM_THREADS=1 "$H" sweep "configs/$name.yaml" --results "results/$name" --shard 1/2 & second=$!
  status=0
  wait $first || status=$?
  wait $second || status=$?
  if [ $status != 0 ]; then
    echo "error: a shard of configs/$name.yaml failed (exit $status); its records are kept: run make quickstart again" >&2
    exit $status
  fi
  "$H" report "results/$name" -o "results/$name/report.md"
done
echo "quickstart: $(( $(date +%s) - start )) s for the sweeps and their reports"
