#!/usr/bin/env bash
# Measures what the CI accuracy check catches. For the clean tree (2 threads and 1 thread: another
# float summation order) and for each fault patch in bench/faults/: apply it to a scratch worktree
# of HEAD, build, run the CI sweep (configs/ci.yaml), run `harness regress` against the committed
# baseline, record caught or missed with the metric deltas, revert. Each run is judged twice: by the
# check as CI runs it (two-sided on the metrics, plus the training diagnostics) and by the earlier
# check (metric drops only), so the table shows what the tuning bought. Writes
# reports/regress-sensitivity.md; the results folders stay in target/faults/results/.
# Nothing in the harness knows about the faults.
#   bash bench/faults/run.sh            (about a minute per fault after the first build)
#   bash bench/faults/run.sh --rejudge  (no sweeps: judge the kept results again with HEAD's check,
#                                        e.g. after tuning it; the faults touch neither regress nor stats)
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$(pwd)
# The Makefile's libtorch (the venv's torch package), so the copied build below is reused as is.
LIBTORCH=$(ls -d "$REPO"/.venv/lib/python3*/site-packages/torch | head -1)
export LIBTORCH PATH="$REPO/.venv/bin:$PATH"
# The worktree has its own target folder, so the repository's build is never replaced by a faulty one.
export CARGO_TARGET_DIR="$REPO/target/faults"
# Seeded with a copy of the repository's test build, so dependencies are not compiled again.
if [ ! -d "$CARGO_TARGET_DIR/debug" ] && [ -d "$REPO/target/debug" ]; then
  mkdir -p "$CARGO_TARGET_DIR" && cp -r "$REPO/target/debug" "$CARGO_TARGET_DIR/debug"
fi
RESULTS="$CARGO_TARGET_DIR/results"
REJUDGE=0
[ "${1:-}" = --rejudge ] && REJUDGE=1
if [ $REJUDGE = 1 ]; then
  [ -d "$RESULTS/clean-2-threads" ] || { echo "error: no kept results in $RESULTS: run bash bench/faults/run.sh first" >&2; exit 1; }
else
  rm -rf "$RESULTS" && mkdir -p "$RESULTS"
  git rev-parse --short HEAD > "$RESULTS/commit"
fi
OUT=$(mktemp -d /tmp/harness-faults.XXXXXX)
WT="$OUT/tree"
git worktree add --quiet --detach "$WT" HEAD
trap 'git -C "$REPO" worktree remove --force "$WT"; rm -rf "$OUT"' EXIT
ROWS=()

# judge NAME WHAT: the check (as CI runs it, and the earlier one) on the kept results, one row.
judge() {
  local name=$1 what=$2 H="$CARGO_TARGET_DIR/debug/harness" R="$RESULTS/$1"
  if [ -f "$R.unbuilt" ]; then
    ROWS+=("| $name | $what | – | – | – | does not build | does not build | – |"); return
  fi
  local now=missed before=missed
  "$H" regress --baseline "$REPO/results/baselines/ci" --current "$R" -o "$R.md" > /dev/null 2>&1 || now="**caught**"
  "$H" regress --baseline "$REPO/results/baselines/ci" --current "$R" --drops-only --no-diagnostics \
    -o "$R.before.md" > /dev/null 2>&1 || before="**caught**"
  if [[ $name == clean-* ]]; then
    [ "$now" = missed ] && now="green" || now="**false alarm**"
    [ "$before" = missed ] && before="green" || before="**false alarm**"
  fi
  local deltas by
  deltas=$(python3 "$REPO/bench/faults/deltas.py" "$REPO/results/baselines/ci" "$R")
  by=$(python3 "$REPO/bench/faults/findings.py" "$R.md")
  ROWS+=("| $name | $what | $deltas | $before | $now | $by |")
}

# measure NAME THREADS WHAT: build the worktree as it is, run the CI sweep, judge it (with
# --rejudge: judge the kept results with the clean build).
measure() {
  local name=$1 threads=$2 what=$3
  if [ $REJUDGE = 0 ]; then
    rm -f "$RESULTS/$name.unbuilt"
    if (cd "$WT" && cargo build --quiet --locked -p harness 2> "$OUT/$name.build"); then
      OMP_NUM_THREADS=$threads "$CARGO_TARGET_DIR/debug/harness" sweep "$REPO/configs/ci.yaml" \
        --results "$RESULTS/$name" > /dev/null 2>&1 || true
    else
      touch "$RESULTS/$name.unbuilt"
    fi
  fi
  judge "$name" "$what"
}

if [ $REJUDGE = 1 ]; then
  (cd "$WT" && cargo build --quiet --locked -p harness)
fi
measure clean-2-threads 2 "none (the clean tree, 2 threads)"
measure clean-1-thread 1 "none (the clean tree, 1 thread: another summation order)"
for p in "$REPO"/bench/faults/*.patch; do
  name=$(basename "$p" .patch)
  what=$(grep -F "\`$name.patch\`" "$REPO/bench/faults/catalogue.md" | cut -d'|' -f3 | sed 's/^ *//; s/ *$//')
  if [ $REJUDGE = 0 ]; then
    git -C "$WT" checkout --quiet -- .
    git -C "$WT" apply "$p"
  fi
  measure "$name" 2 "$what"
done
git -C "$WT" checkout --quiet -- .

caught() { printf '%s\n' "${ROWS[@]}" | grep -v '^| clean-' | awk -F'|' -v c="$1" '$c ~ /caught/' | wc -l; }
faults=$(printf '%s\n' "${ROWS[@]}" | grep -vc '^| clean-')
{
  echo "# What the CI accuracy check catches"
  echo
  echo "Written by \`bash bench/faults/run.sh\` ($(date -u +%Y-%m-%d), $(nproc) cores): sweeps at commit"
  echo "$(cat "$RESULTS/commit" 2>/dev/null || echo unknown), judged at commit $(git rev-parse --short HEAD) (\`--rejudge\` judges kept sweeps again)."
  echo "Each row: a fault patched into a scratch copy of the tree, the CI sweep (\`configs/ci.yaml\`:"
  echo "Softmax_norm, SoftTriple K=4 and ProxyNCA on the main job's views data, dim 64, 5 seeds) and"
  echo "\`harness regress\` against the committed baseline (\`results/baselines/ci\`), paired t-tests"
  echo "over seeds per cell at α = 0.05. *now*: the check as CI runs it (metrics R@1, NMI, MAP@R"
  echo "two-sided with a 1-point tolerance, α/2 per side; final loss, final regularizer and effective"
  echo "centres two-sided with a 3 % tolerance). *before*: the earlier check (metric drops only, α = 0.05,"
  echo "1 point). Δ = current − baseline in points, mean over the three cells (in brackets: the cell"
  echo "that moved most). *caught*: the check exits 1; *caught by*: what the check now flagged."
  echo
  echo "**Caught now: $(caught 8) of $faults faults; before: $(caught 7) of $faults.**"
  echo
  echo "| fault | what | Δ R@1 | Δ NMI | Δ MAP@R | before | now | caught by |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
} > "$REPO/reports/regress-sensitivity.md.new"
# The hand-written sections after the table (why each miss is missed, the mutants) are kept.
if [ -f "$REPO/reports/regress-sensitivity.md" ]; then
  { echo; sed -n '/^## /,$p' "$REPO/reports/regress-sensitivity.md"; } >> "$REPO/reports/regress-sensitivity.md.new"
fi
mv "$REPO/reports/regress-sensitivity.md.new" "$REPO/reports/regress-sensitivity.md"
echo "wrote reports/regress-sensitivity.md"
