#!/usr/bin/env bash
# Measures what the CI accuracy check catches. For the clean tree (2 threads and 1 thread: another
# float summation order) and for each fault patch in bench/faults/: apply it to a scratch worktree
# of HEAD, build, run the CI sweep (configs/ci.yaml), run `harness regress` against the committed
# baseline, record caught or missed with the metric deltas, revert. Writes
# reports/regress-sensitivity.md. Nothing in the harness knows about the faults.
#   bash bench/faults/run.sh            (about a minute per fault after the first build)
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$(pwd)
export LIBTORCH_USE_PYTORCH=1 PATH="$REPO/.venv/bin:$PATH"
# The worktree has its own target folder, so the repository's build is never replaced by a faulty one.
export CARGO_TARGET_DIR="$REPO/target/faults"
# Seeded with a copy of the repository's test build, so dependencies are not compiled again.
if [ ! -d "$CARGO_TARGET_DIR/debug" ] && [ -d "$REPO/target/debug" ]; then
  mkdir -p "$CARGO_TARGET_DIR" && cp -r "$REPO/target/debug" "$CARGO_TARGET_DIR/debug"
fi
OUT=$(mktemp -d /tmp/harness-faults.XXXXXX)
WT="$OUT/tree"
git worktree add --quiet --detach "$WT" HEAD
trap 'git -C "$REPO" worktree remove --force "$WT"; rm -rf "$OUT"' EXIT
ROWS=()

# measure NAME THREADS: build the worktree as it is, run the CI sweep and the check, add a row.
measure() {
  local name=$1 threads=$2 what=$3
  (cd "$WT" && cargo build --quiet --locked -p harness 2> "$OUT/$name.build") || {
    ROWS+=("| $name | $what | – | – | – | does not build |"); return; }
  local H="$CARGO_TARGET_DIR/debug/harness"
  OMP_NUM_THREADS=$threads "$H" sweep "$REPO/configs/ci.yaml" --results "$OUT/$name" > /dev/null 2>&1 || true
  local verdict=missed
  "$H" regress --baseline "$REPO/results/baselines/ci" --current "$OUT/$name" -o "$OUT/$name.md" > /dev/null 2>&1 || verdict="**caught**"
  if [[ $name == clean-* ]]; then
    [ "$verdict" = missed ] && verdict="green (no false alarm)" || verdict="**false alarm**"
  fi
  local deltas
  deltas=$(python3 "$REPO/bench/faults/deltas.py" "$REPO/results/baselines/ci" "$OUT/$name")
  ROWS+=("| $name | $what | $deltas | $verdict |")
}

measure clean-2-threads 2 "none (the clean tree, 2 threads)"
measure clean-1-thread 1 "none (the clean tree, 1 thread: another summation order)"
for p in "$REPO"/bench/faults/*.patch; do
  name=$(basename "$p" .patch)
  what=$(grep -F "\`$name.patch\`" "$REPO/bench/faults/catalogue.md" | cut -d'|' -f3 | sed 's/^ *//; s/ *$//')
  git -C "$WT" checkout --quiet -- .
  git -C "$WT" apply "$p"
  measure "$name" 2 "$what"
done
git -C "$WT" checkout --quiet -- .

{
  echo "# What the CI accuracy check catches"
  echo
  echo "Written by \`bash bench/faults/run.sh\` ($(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD), $(nproc) cores)."
  echo "Each row: a fault patched into a scratch copy of the tree, the CI sweep (\`configs/ci.yaml\`: "
  echo "Softmax_norm, SoftTriple K=4 and ProxyNCA on the main job's views data, dim 64, 5 seeds) and \`harness regress\`"
  echo "against the committed baseline (\`results/baselines/ci\`: one-sided paired t-test per cell and"
  echo "metric, α = 0.05, tolerance 1 point). Δ = current − baseline in points, mean over the three"
  echo "cells (in brackets: the cell that moved most). *caught*: the check exits 1."
  echo
  echo "| fault | what | Δ R@1 | Δ NMI | Δ MAP@R | check |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
} > "$REPO/reports/regress-sensitivity.md"
echo "wrote reports/regress-sensitivity.md"
