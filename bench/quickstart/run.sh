#!/usr/bin/env bash
# Runs sweeps (`make quickstart`, `make study`, `make power`): each sweep as two processes side by side on the same
# results folder, one libtorch thread each (on a 2-core machine that trains about 1.7 times faster
# than one process with two threads: the steps are small), then its report. Each process takes the
# next run that has no record and that the other is not running (runs are locked while they run),
# so the two stay busy to the end even when some runs are already recorded or take longer than
# others. The report in results/NAME/report.md is rewritten after each round of seeds, so a first
# (low-power) table can be read within minutes. Exits non-zero if a process fails.
#   bash bench/quickstart/run.sh HARNESS NAME...      (configs/NAME.yaml into results/BASE/, BASE the
#   last part of NAME: real/omniglot runs configs/real/omniglot.yaml into results/omniglot/)
set -euo pipefail
H=$1; shift
start=$(date +%s)
for name in "$@"; do
  base=${name##*/}
  # Runs go seed by seed; whichever process completes a round rewrites the report of the rounds so far.
  early=(--results "results/$base" --report "results/$base/report.md")
  OMP_NUM_THREADS=1 "$H" sweep "configs/$name.yaml" "${early[@]}" & first=$!
  OMP_NUM_THREADS=1 "$H" sweep "configs/$name.yaml" "${early[@]}" & second=$!
  status=0
  wait $first || status=$?
  wait $second || status=$?
  if [ $status != 0 ]; then
    echo "error: a sweep process of configs/$name.yaml failed (exit $status); its records are kept: run make quickstart again" >&2
    exit $status
  fi
  "$H" report "results/$base" -o "results/$base/report.md"
done
echo "sweeps: $(( $(date +%s) - start )) s for $* and their reports"
