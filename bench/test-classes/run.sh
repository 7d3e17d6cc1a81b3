#!/usr/bin/env bash
# Trains bench/test-classes/config.yaml (two processes, one thread each, as make quickstart) with
# embeddings saved, then writes the analysis to bench/test-classes/results.md.
#   bash bench/test-classes/run.sh [HARNESS]   (default target/debug/harness; needs .venv's numpy)
set -euo pipefail
H=${1:-target/debug/harness}
R=results/test-classes
for _ in 1 2; do OMP_NUM_THREADS=1 "$H" sweep bench/test-classes/config.yaml --results "$R" --save-embeddings & done
wait
.venv/bin/python3 bench/test-classes/analyze.py "$R" > bench/test-classes/results.md
cat bench/test-classes/results.md
