"""The power-versus-time trade-off of the main job, measured on the committed power study.

For n = 5, 6, ... seeds it reports the records of seeds 0..n-1 of reports/power-d64 and
reports/power-d512 with the harness itself (so the MDD is the report's own, at its Holm level) and
adds up the runs' measured compute (train + eval seconds). The quickstart's wall time on 2 cores is
about half its compute (two one-thread processes, bench/quickstart/run.sh) plus the image study.

    python3 bench/power-curve/curve.py [HARNESS] > bench/power-curve/results.md
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

BUDGET = 2 * 600  # two cores for 10 minutes
MEDIAN = re.compile(r"the median is \*\*([0-9.]+) points\*\* \(range ([0-9.]+)–([0-9.]+)\)")


def records(folder):
    out = []
    for path in sorted(glob.glob(f"{folder}/runs/*.json")):
        r = json.load(open(path))
        seed = int(r["slug"].rsplit("-s", 1)[1])
        o = r["outcome"]
        out.append((path, seed, o.get("train_seconds", 0.0) + o.get("eval_seconds", 0.0)))
    return out


def point(harness, folder, n, scratch):
    """Median and range of the R@1 MDD, and the compute, of the first n seeds of `folder`."""
    sub = os.path.join(scratch, f"{os.path.basename(folder)}-{n}")
    os.makedirs(f"{sub}/runs")
    shutil.copy(f"{folder}/sweep.json", sub)
    compute = 0.0
    for path, seed, seconds in records(folder):
        if seed < n:
            shutil.copy(path, f"{sub}/runs/")
            compute += seconds
    subprocess.run([harness, "report", sub, "-o", f"{sub}/report.md"], check=True, capture_output=True)
    m = MEDIAN.search(open(f"{sub}/report.md").read())
    return float(m.group(1)), f"{m.group(2)}–{m.group(3)}", compute


def main(harness):
    images = sum(s for _, _, s in records("reports/quickstart-images"))
    curves = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, seeds in [("power-d64", range(5, 25)), ("power-d512", range(5, 11))]:
            curves[name] = {n: point(harness, f"reports/{name}", n, scratch) for n in seeds}
    print("# How many seeds a 2-point MDD needs, and what they cost on 2 cores\n")
    print("From `python3 bench/power-curve/curve.py` over the committed records of `reports/power-d64/` "
          "and `reports/power-d512/`: the report of seeds 0..n−1 (the harness's own MDD: 80% power at "
          "α = 0.05/36, the Holm level of its 36 tests) and the runs' measured compute "
          "(train + eval seconds, one thread each).\n")
    for name, curve in curves.items():
        print(f"## {name}: the K × τ study (13 variants)\n")
        print("| seeds | median R@1 MDD | range | compute (s) |")
        print("|---:|---:|---|---:|")
        for n, (mdd, span, compute) in curve.items():
            print(f"| {n} | {mdd:.2f} | {span} | {compute:.0f} |")
        print()
    n64 = min((n for n, p in curves["power-d64"].items() if p[0] <= 2.0), default=None)
    n512 = min((n for n, p in curves["power-d512"].items() if p[0] <= 2.0), default=None)
    print("## The quickstart at the power target\n")
    print(f"Image study (`reports/quickstart-images/`, 5 seeds): {images:.0f} s of compute.")
    if n64 is None or n512 is None:
        print("The power target is not reached within the seeds above.")
        return
    views = curves["power-d64"][n64][2] + curves["power-d512"][n512][2]
    print(f"Fewest seeds with a median R@1 MDD ≤ 2: {n64} at size 64 and {n512} at 512: {views:.0f} s of "
          f"compute, {views / 120:.1f} minutes of wall time on 2 cores (two one-thread processes) without the "
          f"image study, {(views + images) / 120:.1f} with it, against the quickstart's budget of 10 minutes "
          f"({BUDGET} s of compute).\n")
    for share, label in [(1.0, "the whole budget"), (0.9, "90% of it (a margin for a slower day)")]:
        fits = [(max(curves["power-d64"][a][0], curves["power-d512"][b][0]), a, b)
                for a in curves["power-d64"] for b in curves["power-d512"]
                if curves["power-d64"][a][2] + curves["power-d512"][b][2] + images <= share * BUDGET]
        worst, a, b = min(fits)
        print(f"- Best that fits {label} with the image study (the larger of the two medians made smallest): "
              f"{a} seeds at 64 and {b} at 512, medians {curves['power-d64'][a][0]:.2f} and "
              f"{curves['power-d512'][b][0]:.2f} points.")
    print(f"- Today's quickstart (5 + 5 seeds): {curves['power-d64'][5][2] + curves['power-d512'][5][2] + images:.0f} s "
          f"of compute, medians {curves['power-d64'][5][0]:.2f} and {curves['power-d512'][5][0]:.2f} points.")

if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "target/debug/harness")
