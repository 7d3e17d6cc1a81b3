"""Metric deltas of a results folder against a baseline, for bench/faults/run.sh.

Prints three Markdown cells: for R@1, NMI and MAP@R, the mean over cells (data set x dim x loss
variant) of current - baseline in points, and in brackets the cell that moved most. Cells missing
from the current results (e.g. every run failed) are reported as such.
    python3 deltas.py BASELINE CURRENT
"""
import glob
import json
import sys
from collections import defaultdict


def cells(folder):
    """(cell -> metric -> mean value in %) over the finished records of a results folder."""
    values = defaultdict(lambda: defaultdict(list))
    for path in glob.glob(f"{folder}/runs/*.json"):
        r = json.load(open(path))
        o = r["outcome"]
        if o["status"] != "finished":
            continue
        c = r["config"]
        loss = c["loss"]
        key = f"{c['data']['kind']} d{c['dim']} {loss['kind']} k{loss.get('centers_per_class', '')}"
        m = o["metrics"]
        recall = dict((k, v) for k, v in m["retrieval"]["recall_at_k"])
        values[key]["R@1"].append(100 * recall[1])
        values[key]["NMI"].append(100 * m["nmi"]["nmi"])
        values[key]["MAP@R"].append(100 * m["retrieval"]["map_at_r"])
    return {k: {m: sum(v) / len(v) for m, v in ms.items()} for k, ms in values.items()}


def main():
    base, cur = cells(sys.argv[1]), cells(sys.argv[2])
    out = []
    for metric in ["R@1", "NMI", "MAP@R"]:
        shared = [k for k in base if k in cur]
        if not shared:
            out.append("no finished runs")
            continue
        d = {k: cur[k][metric] - base[k][metric] for k in shared}
        worst = max(d, key=lambda k: abs(d[k]))
        out.append(f"{sum(d.values()) / len(d):+.2f} ({worst.split(' ')[2]} {d[worst]:+.2f})")
    print(" | ".join(out))


if __name__ == "__main__":
    main()
