"""What the quickstart can show within a newcomer's budget: the power and compute of candidate
designs of the K × τ study, measured on the committed power study (reports/power-d64, 24 seeds;
reports/power-d512, 10 seeds; all 13 variants, both from one machine and one day).

For each design (a subset of the variants and the first n seeds, both embedding sizes) it reports
those records with the harness itself (so the MDD is the report's own, at the Holm level of the
design's own family of tests) and adds up the runs' measured compute (train + eval seconds, one
thread each). The quickstart's wall time on 2 cores is about half its compute (two one-thread
processes, bench/quickstart/run.sh).

    python3 bench/quickstart-cut/tradeoff.py [HARNESS] > bench/quickstart-cut/results.md
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

MEDIAN = re.compile(r"the median is \*\*([0-9.]+) points\*\* \(range ([0-9.]+)–([0-9.]+)\)")
SLOW = 3.1  # the slow machine of the issue ran the same runs 3.1× slower (2,271 s against 733 s)
BUDGET_SLOW = 8 * 60  # the sweeps' target on that machine, wall seconds

ALL = ["triplet-semihard", "proxynca", "softmaxnorm", "hardtriple-k2", "hardtriple-k4", "hardtriple-k8", "softtriple-k1",
       "softtriple-k2", "softtriple-k4", "softtriple-k8", "softtriple-k2-notau", "softtriple-k4-notau", "softtriple-k8-notau"]
K24 = ["triplet-semihard", "proxynca", "softmaxnorm", "hardtriple-k2", "hardtriple-k4", "softtriple-k2", "softtriple-k4",
       "softtriple-k2-notau", "softtriple-k4-notau"]
K28 = [v.replace("k4", "k8") for v in K24]
K248 = K24 + ["hardtriple-k8", "softtriple-k8", "softtriple-k8-notau"]
# The K axis at τ = 0.2 (Softmax_norm is K = 1), the τ axis at K = 4, and the two other baselines.
AXES = ["triplet-semihard", "proxynca", "softmaxnorm", "softtriple-k2", "softtriple-k4", "softtriple-k4-notau"]
AXES_HT = AXES + ["hardtriple-k4"]
DESIGNS = [("13 variants (K 1, 2, 4, 8): the full study", ALL, 5), ("13 variants (K 1, 2, 4, 8)", ALL, 3),
           ("12 variants (K 2, 4, 8)", K248, 3), ("9 variants (K 2, 8)", K28, 3), ("9 variants (K 2, 4)", K24, 3),
           ("9 variants (K 2, 4)", K24, 4), ("7 variants (K 1, 2, 4; τ at K 4; HardTriple K 4)", AXES_HT, 4),
           ("7 variants (K 1, 2, 4; τ at K 4; HardTriple K 4)", AXES_HT, 5),
           ("6 variants (K 1, 2, 4; τ at K 4)", AXES, 4), ("6 variants (K 1, 2, 4; τ at K 4)", AXES, 5)]


def variant(slug):
    """`views-softtriple-k2-notau-d64-s3` -> `softtriple-k2-notau`."""
    return re.sub(r"^views-|-d\d+-s\d+$", "", slug)


def records(folder):
    out = []
    for path in sorted(glob.glob(f"{folder}/runs/*.json")):
        r = json.load(open(path))
        o = r["outcome"]
        out.append((path, variant(r["slug"]), r["config"]["seed"], o["train_seconds"] + o["eval_seconds"]))
    return out


def point(harness, folder, variants, n, scratch):
    """(median R@1 MDD, range, compute seconds) of `variants` at seeds 0..n-1 of `folder`."""
    sub = tempfile.mkdtemp(dir=scratch)
    os.makedirs(f"{sub}/runs")
    shutil.copy(f"{folder}/sweep.json", sub)
    compute = 0.0
    for path, v, seed, seconds in records(folder):
        if seed < n and v in variants:
            shutil.copy(path, f"{sub}/runs/")
            compute += seconds
    subprocess.run([harness, "report", sub, "-o", f"{sub}/report.md"], check=True, capture_output=True)
    m = MEDIAN.search(open(f"{sub}/report.md").read())
    return (float(m.group(1)), f"{m.group(2)}–{m.group(3)}", compute) if m else (float("nan"), "–", compute)


def main(harness):
    found = {v for _, v, _, _ in records("reports/power-d64")}
    assert set(ALL) <= found, sorted(found)
    print("# The quickstart's cut: power against compute\n")
    print("From `python3 bench/quickstart-cut/tradeoff.py` over the committed records of `reports/power-d64/` "
          "and `reports/power-d512/` (one machine, one day): for each design, the harness's own report of its "
          "variants at seeds 0..n−1 (MDD: 80% power at the Holm level of the design's own tests) and the runs' "
          "measured compute (train + eval seconds, one thread each). Wall time on 2 cores is about half the "
          f"compute; on the slow machine of the issue (the same runs took {SLOW}× as long) the sweeps must "
          f"take {BUDGET_SLOW // 60} minutes or less, about {BUDGET_SLOW * 2 / SLOW:.0f} s of compute here.\n")
    print("| design | seeds | runs | compute (s) | slow machine, wall (min) | median R@1 MDD, 64 | range | median R@1 MDD, 512 | range |")
    print("|---|---:|---:|---:|---:|---:|---|---:|---|")
    with tempfile.TemporaryDirectory() as scratch:
        for name, variants, n in DESIGNS:
            a = point(harness, "reports/power-d64", variants, n, scratch)
            b = point(harness, "reports/power-d512", variants, n, scratch)
            compute = a[2] + b[2]
            print(f"| {name} | {n} | {2 * len(variants) * n} | {compute:.0f} | {compute * SLOW / 2 / 60:.1f} | "
                  f"{a[0]:.2f} | {a[1]} | {b[0]:.2f} | {b[1]} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "target/debug/harness")
