#!/usr/bin/env bash
# The cost of the two validation splits, measured side by side: configs/tuned.yaml cut to one loss
# (Softmax_norm), 4 trials and 1 seed, once under `holdout` (half the training classes validate) and
# once under `folds` with k = 4 (MLRC), each as one process with one thread. Prints the compute of
# the search and of the final phase of each, from the records.
#   bash bench/tune/protocol-cost.sh HARNESS
set -euo pipefail
H=$1
dir=$(mktemp -d /tmp/protocol-cost.XXXXXX)
trap 'rm -rf "$dir"' EXIT
python3 - "$dir" <<'PY'
import re, sys
d = sys.argv[1]
s = open("configs/tuned.yaml").read()
s = re.sub(r"losses:\n(  - .*\n)+", "losses:\n  - {kind: softmax_norm}\n", s)
s = s.replace("seeds: [0, 1, 2, 3, 4]", "seeds: [0]").replace("trials: 24", "trials: 4")
# Only Softmax_norm's space: a space for a loss kind the sweep does not have is refused.
head, spaces = s.split("  spaces:\n")
block = re.search(r"    softmax_norm:\n(      .*\n)+", spaces).group(0)
s = head + "  spaces:\n" + block
open(f"{d}/holdout.yaml", "w").write(s)
open(f"{d}/folds.yaml", "w").write(s.replace("split: {kind: holdout, validation_fraction: 0.5}", "split: {kind: folds, k: 4}"))
PY
for split in holdout folds; do
  start=$(date +%s)
  OMP_NUM_THREADS=1 "$H" sweep "$dir/$split.yaml" --results "$dir/$split" > /dev/null 2>&1
  echo "$split: $(( $(date +%s) - start )) s of wall time"
done
python3 - "$dir" <<'PY'
import glob, json, sys
d = sys.argv[1]
cost = {}
for split in ["holdout", "folds"]:
    for f in glob.glob(f"{d}/{split}/runs/*.json"):
        r = json.load(open(f))
        phase = r["config"]["protocol"]["phase"]
        c = cost.setdefault((split, phase), [0, 0.0])
        c[0] += 1
        c[1] += r["outcome"]["train_seconds"] + r["outcome"]["eval_seconds"]
for (split, phase), (n, s) in sorted(cost.items()):
    print(f"{split:8} {phase:7} {n:3} runs {s:7.1f} s of compute")
for phase in ["search", "final"]:
    print(f"folds / holdout, {phase}: {cost[('folds', phase)][1] / cost[('holdout', phase)][1]:.2f}x")
PY
