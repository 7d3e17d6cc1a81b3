"""R@1 against training length, from the committed references: the fixed-items study
(reports/quickstart at size 64: 2,000 steps; reports/training-length: 4,000) and the fresh-items
study (reports/fresh-items: 2,000; reports/fresh-items-4000, -8000 and -32000, the last with four variants
only). Per variant: mean R@1 over
seeds, and its paired difference to Softmax_norm (same seed) with a 95% Student-t interval.

    python3 bench/training-length/trend.py > bench/training-length/results.md
"""
import collections
import glob
import json
import math
import statistics

# Two-sided 95% Student-t quantiles by degrees of freedom (seeds − 1).
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
STUDIES = {
    "fixed items": [("reports/quickstart", 2000), ("reports/training-length", 4000)],
    "fresh items": [("reports/fresh-items", 2000), ("reports/fresh-items-4000", 4000), ("reports/fresh-items-8000", 8000), ("reports/fresh-items-32000", 32000)],
}
BASE = "softmaxnorm"


def r1_by_variant(folder):
    out = collections.defaultdict(dict)  # variant -> seed -> R@1 (%)
    for path in glob.glob(f"{folder}/runs/*.json"):
        r = json.load(open(path))
        if r["outcome"]["status"] != "finished" or r["outcome"]["metrics"]["dim"] != 64:
            continue
        stem, seed = r["slug"].rsplit("-s", 1)
        variant = stem.split("-", 1)[1].rsplit("-d", 1)[0]
        out[variant][int(seed)] = 100.0 * r["outcome"]["metrics"]["retrieval"]["recall_at_k"][0][1]
    return out


def paired(a, b):
    d = [a[s] - b[s] for s in sorted(set(a) & set(b))]
    half = T95[len(d) - 1] * statistics.stdev(d) / math.sqrt(len(d)) if len(d) > 1 and statistics.stdev(d) > 0 else 0.0
    return statistics.mean(d), half


def main():
    print("# R@1 against training length (embedding size 64, 5 seeds)\n")
    print("From `python3 bench/training-length/trend.py` over the committed records. Each cell: mean R@1 "
          "(%) over seeds, then Δ = variant − Softmax_norm in points, matched by seed, ± the 95% "
          "Student-t half-width; –: not run at that length.\n")
    for study, points in STUDIES.items():
        data = [(steps, r1_by_variant(folder)) for folder, steps in points]
        variants = sorted(data[0][1])
        print(f"## {study}\n")
        print("| variant | " + " | ".join(f"{steps:,} steps" for steps, _ in data) + " |")
        print("|---|" + "---|" * len(data))
        for v in variants:
            cells = []
            for _, runs in data:
                if v not in runs:
                    cells.append("–")
                    continue
                mean = statistics.mean(runs[v].values())
                if v == BASE:
                    cells.append(f"{mean:.1f}")
                else:
                    d, h = paired(runs[v], runs[BASE])
                    cells.append(f"{mean:.1f} (Δ {d:+.1f} ± {h:.1f})")
            print(f"| {v} | " + " | ".join(cells) + " |")
        print()


if __name__ == "__main__":
    main()
