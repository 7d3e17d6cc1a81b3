#!/usr/bin/env bash
# Runs sweeps (`make study`, `make power`, `make tune`, `make omniglot`): each sweep as one `harness
# sweep --jobs JOBS` (default 2): JOBS worker processes on the same results folder, the cores divided
# among them (on a 2-core machine, one libtorch thread each: that trains about 1.7 times faster than
# one process with two threads, the steps being small). Each worker takes the next run that has no
# record and that no other is running (runs are locked while they run), so all stay busy to the end.
# The report in results/BASE/report.md is rewritten after each round of seeds, so a first (low-power)
# table can be read within minutes. Exits non-zero if a worker fails.
#   bash bench/quickstart/run.sh HARNESS NAME...      (configs/NAME.yaml into results/BASE/, BASE the
#   last part of NAME: real/omniglot runs configs/real/omniglot.yaml into results/omniglot/)
set -euo pipefail
H=$1; shift
start=$(date +%s)
for name in "$@"; do
  base=${name##*/}
  # Runs go seed by seed; whichever worker completes a round rewrites the report of the rounds so far.
  if ! "$H" sweep "configs/$name.yaml" --jobs "${JOBS:-2}" --results "results/$base" --report "results/$base/report.md"; then
    echo "error: a sweep worker of configs/$name.yaml failed; its records are kept: run the make target again" >&2
    exit 1
  fi
  "$H" report "results/$base" -o "results/$base/report.md"
done
echo "sweeps: $(( $(date +%s) - start )) s for $* and their reports"
