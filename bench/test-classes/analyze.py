"""Scores the saved embeddings of bench/test-classes/config.yaml on parts of the 400-class test split
and prints, per size and variant, the spread over seeds of the paired R@1 difference to Softmax_norm.

    .venv/bin/python3 bench/test-classes/analyze.py results/test-classes > bench/test-classes/results.md

Each run's R@1 on all 400 classes is checked against the harness's own record first (the same
embeddings, an independent implementation: cosine nearest neighbour, self excluded)."""
import collections
import glob
import json
import sys

import numpy as np

BASE = "softmaxnorm"
PARTS = ["first 100", "mean of 4 × 100", "first 200", "all 400"]


def recall_at_1(e, labels):
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    s = e @ e.T
    np.fill_diagonal(s, -np.inf)
    return 100.0 * float((labels[s.argmax(1)] == labels).mean())


def scores(e, labels):
    """R@1 on the first 100 classes (the quickstart's split), the mean over four disjoint 100-class
    galleries, the first 200 classes, and all 400."""
    part = lambda lo, hi: recall_at_1(e[(labels >= lo) & (labels < hi)], labels[(labels >= lo) & (labels < hi)])
    return {
        "first 100": part(0, 100),
        "mean of 4 × 100": float(np.mean([part(a, a + 100) for a in range(0, 400, 100)])),
        "first 200": part(0, 200),
        "all 400": recall_at_1(e, labels),
    }


def load(folder):
    runs = collections.defaultdict(dict)  # (dim, variant) -> seed -> scores
    for path in sorted(glob.glob(f"{folder}/runs/*.json")):
        record = json.load(open(path))
        if record["outcome"]["status"] != "finished":
            continue
        rid, slug = record["id"], record["slug"]
        e = np.load(f"{folder}/embeddings/{rid}/embeddings.npy").astype(np.float64)
        labels = np.load(f"{folder}/embeddings/{rid}/labels.npy")
        s = scores(e, labels)
        harness = 100.0 * record["outcome"]["metrics"]["retrieval"]["recall_at_k"][0][1]
        assert abs(s["all 400"] - harness) < 0.02, f"{slug}: R@1 {s['all 400']} here, {harness} in the record"
        stem, seed = slug.rsplit("-s", 1)
        variant, dim = stem.split("-", 1)[1].rsplit("-d", 1)
        dim = int(dim)
        runs[(dim, variant)][int(seed)] = s
    return runs


def main(folder):
    runs = load(folder)
    keys = PARTS
    print("# Test-split size and the seed-to-seed spread of paired R@1 differences\n")
    print(f"From `bench/test-classes/analyze.py {folder}` (records and embeddings of "
          "`bench/test-classes/config.yaml`). Δ = variant − Softmax_norm in R@1 points, matched by seed; "
          "sd: its standard deviation over seeds (from 6 seeds each sd is itself uncertain by about ±30 %). "
          "*first 100* is the "
          "quickstart's test split.\n")
    print("| size | variant | seeds | " + " | ".join(f"sd of Δ, {k}" for k in keys) + " | Δ, first 100 | Δ, all 400 |")
    print("|---|---|---|" + "---|" * len(keys) + "---|---|")
    ratios = collections.defaultdict(list)
    for (dim, variant) in sorted(runs):
        if variant == BASE:
            continue
        base = runs[(dim, BASE)]
        seeds = sorted(set(runs[(dim, variant)]) & set(base))
        d = {k: np.array([runs[(dim, variant)][s][k] - base[s][k] for s in seeds]) for k in keys}
        sd = {k: d[k].std(ddof=1) for k in keys}
        for k in keys:
            ratios[k].append(sd[k] / sd["first 100"])
        print(f"| {dim} | {variant} | {len(seeds)} | " + " | ".join(f"{sd[k]:.2f}" for k in keys)
              + f" | {d['first 100'].mean():+.2f} | {d['all 400'].mean():+.2f} |")
    print("\nMedian sd relative to the quickstart's split: "
          + ", ".join(f"{k} {np.median(ratios[k]):.2f}" for k in keys) + ".")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results/test-classes")
