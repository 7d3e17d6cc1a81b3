#!/usr/bin/env python3
"""Writes the Markdown summary of a bench/gpu/run.sh work folder: one section per part, with what
it got (a part that failed or ran out of time says so, and the others still report).

Usage: summarize.py WORK OUT.md DEVICE DRY(0|1)
"""
import glob
import json
import os
import statistics
import sys

BF16_TOLERANCE = 0.05  # largest |bf16 − fp32| / fp32 epoch mean loss accepted


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def record(work, name):
    """The one run record under WORK/NAME/runs/, or None."""
    paths = sorted(glob.glob(os.path.join(work, name, "runs", "*.json")))
    return load(paths[0]) if paths else None


def smi(work, name):
    """(median utilisation %, mean utilisation %, peak memory MiB above the first sample) or None."""
    try:
        rows = [[float(v) for v in line.split(",")] for line in open(os.path.join(work, f"{name}.smi")) if "," in line]
    except (OSError, ValueError):
        return None
    if not rows:
        return None
    util = [r[0] for r in rows]
    return statistics.median(util), statistics.mean(util), max(r[1] for r in rows) - rows[0][1]


def fmt_smi(s):
    return "n/a (no nvidia-smi)" if s is None else f"median {s[0]:.0f} %, mean {s[1]:.0f} %; peak memory +{s[2]:.0f} MiB"


def recall(metrics, k=1):
    return next((v for kk, v in metrics["retrieval"]["recall_at_k"] if kk == k), float("nan"))


def part_status(work):
    rows = {}
    for line in open(os.path.join(work, "parts.txt")):
        name, status, seconds, *_ = line.split()
        rows[name] = (status, seconds)
    return rows


def parity_section(work, out):
    out.append("## 2. Parity\n")
    table = os.path.join(work, "loss_parity.md")
    if os.path.exists(table):
        out += ["Every loss kind, forward and backward from the same parameters and inputs (tolerance 1e-4, relative):", ""]
        out += [line.rstrip() for line in open(table) if line.startswith("|")] + [""]
    e = load(os.path.join(work, "eval_parity.json"))
    if e:
        out.append(f"`harness eval` on {len(e['recall_cpu'])} recall levels, CPU against the device: R@K equal: "
                   f"**{e['recall_equal']}** ({e['recall_cpu']} / {e['recall_device']}); NMI {e['nmi_cpu']:.5f} / "
                   f"{e['nmi_device']:.5f} (|Δ| {e['nmi_abs_diff']:.5f}, tolerance {e['nmi_tolerance']}); "
                   f"MAP@R {e['map_at_r_cpu']:.5f} / {e['map_at_r_device']:.5f}.\n")
    a, b = record(work, "bf16_false"), record(work, "bf16_true")
    if a and b and a["outcome"]["metrics"] and b["outcome"]["metrics"]:
        la, lb = a["outcome"]["diagnostics"]["epoch_loss"], b["outcome"]["diagnostics"]["epoch_loss"]
        worst = max(abs(x - y) / abs(x) for x, y in zip(la, lb))
        out += ["bf16 autocast off and on (parts images, small CNN, SoftTriple K=4), mean loss per epoch:", "",
                "| epoch | fp32 | bf16 | rel. diff |", "|---|---|---|---|"]
        out += [f"| {i + 1} | {x:.4f} | {y:.4f} | {abs(x - y) / abs(x):.2e} |" for i, (x, y) in enumerate(zip(la, lb))]
        verdict = "within" if worst <= BF16_TOLERANCE else "**outside**"
        out += ["", f"Largest relative difference {worst:.2e}, {verdict} the stated {BF16_TOLERANCE:.0%}; R@1 "
                f"{100 * recall(a['outcome']['metrics']):.2f} (fp32) / {100 * recall(b['outcome']['metrics']):.2f} (bf16).", ""]


def training_row(rec, smi_stats):
    """images/s, epoch seconds, data wait share, R@1 of a harness training record."""
    o = rec["outcome"]
    d = o["diagnostics"]
    epochs = d.get("epoch_seconds") or []
    images = (d["steps"] * rec["config"]["train"]["batch_size"]) / max(len(epochs), 1)
    per_epoch = statistics.median(epochs[1:] or epochs) if epochs else float("nan")
    wait = d.get("data_wait_seconds", float("nan"))
    return {"images_per_s": images / per_epoch, "epoch_s": per_epoch, "epochs": epochs, "wait_s": wait,
            "wait_share": wait / sum(epochs) if epochs else float("nan"), "train_s": o["train_seconds"],
            "eval_s": o["eval_seconds"], "r1": recall(o["metrics"]) if o["metrics"] else float("nan"), "smi": smi_stats}


def paper_section(work, out):
    rec = record(work, "paper")
    batch = rec["config"]["train"]["batch_size"] if rec else 32
    out.append(f"## 3. A paper-sized run (BN-Inception, 224 px, batch {batch}, SoftTriple K=10)\n")
    if not rec or not rec["outcome"]["metrics"]:
        out.append("No finished record (see the part's log in work.tar.gz).\n")
        return
    r = training_row(rec, smi(work, "paper"))
    projected = 50 * r["epoch_s"] + r["eval_s"]
    out += [f"- {len(r['epochs'])} epochs: {', '.join(f'{s:.1f}' for s in r['epochs'])} s; **{r['images_per_s']:.0f} images/s** "
            f"(median epoch after the first, {r['epoch_s']:.1f} s)",
            f"- waiting for data: {r['wait_s']:.1f} s, {100 * r['wait_share']:.0f} % of the training time",
            f"- GPU utilisation: {fmt_smi(r['smi'])}",
            f"- evaluation (test split, kNN + k-means): {r['eval_s']:.1f} s; R@1 {100 * r['r1']:.2f} (random init, a few epochs)",
            f"- projected time of the paper's 50 epochs: **{projected / 60:.1f} min** (50 × the median epoch + one evaluation)", ""]
    if r["smi"] and r["smi"][0] < 80 and r["wait_share"] > 0.5:
        out.append("**Finding: the GPU is starved**: utilisation under 80 % and waiting for data dominates.\n")


def peer_section(work, out):
    out += ["## 4. The same epochs in PyTorch (ResNet-50, same JPEGs, workers, loss, optimiser)\n",
            "| batch | bf16 | harness epoch s | PyTorch epoch s | ratio | harness img/s | PyTorch img/s | harness wait | PyTorch wait | GPU util harness / PyTorch |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for path in sorted(glob.glob(os.path.join(work, "peer_t*.json")), key=lambda p: int(p.split("peer_t")[1][:-5])):
        b = path.split("peer_t")[1][:-5]
        t, rec = load(path), record(work, f"peer_h{b}")
        if not t or not rec or not rec["outcome"]["metrics"]:
            out.append(f"| {b} | | (missing: see the log) | | | | | | | |")
            continue
        h = training_row(rec, smi(work, f"peer_h{b}"))
        ts = [e["seconds"] for e in t["epochs"]]
        t_epoch = statistics.median(ts[1:] or ts)
        t_wait = sum(e["data_wait_seconds"] for e in t["epochs"]) / sum(ts)
        ts_smi = smi(work, f"peer_t{b}")
        util = lambda s: "n/a" if s is None else f"{s[0]:.0f} %"
        out.append(f"| {b} | {t['bf16']} | {h['epoch_s']:.2f} | {t_epoch:.2f} | **{h['epoch_s'] / t_epoch:.2f}** | "
                   f"{h['images_per_s']:.0f} | {t['epochs'][-1]['images_per_s']:.0f} | {100 * h['wait_share']:.0f} % | "
                   f"{100 * t_wait:.0f} % | {util(h['smi'])} / {util(ts_smi)} |")
    out += ["", "Epoch time: the median of the epochs after the first (the first alone when there is one). "
            "Ratio < 1: the harness is faster.", ""]


def sop_sections(work, out):
    h, t = load(os.path.join(work, "sop_eval_harness.json")), load(os.path.join(work, "sop_eval_torch.json"))
    size = f"{h['samples']:,} × {h['dim']}" if h else "60,502 × 512"
    out.append(f"## 5. Evaluation at SOP scale ({size})\n")
    ht = load(os.path.join(work, "sop_eval_harness_time.json"))
    if h and t and ht:
        hr, tr = h["retrieval"]["recall_at_k"], t["recall_at_k"]
        same = all(abs(a[1] - b[1]) < 1e-12 for a, b in zip(hr, tr))
        out += [f"- harness eval (kNN and k-means NMI, one restart): {ht['seconds']:.1f} s wall, GPU {fmt_smi(smi(work, 'sop_eval_h'))}",
                f"- torch.mm + topk in chunks (retrieval only): {t['seconds']:.2f} s, allocator peak "
                f"{t['peak_allocated_bytes'] / 2**20:.0f} MiB; GPU {fmt_smi(smi(work, 'sop_eval_t'))}",
                f"- R@1/10/100 harness {[round(v, 6) for _, v in hr]} against torch {[round(v, 6) for _, v in tr]}: "
                f"**{'equal' if same else 'DIFFERENT'}**; NMI {h['nmi']['nmi']:.4f}", ""]
    else:
        out.append("Missing output (see the part's log).\n")
    h, t = load(os.path.join(work, "sop_loss_harness.json")), load(os.path.join(work, "sop_loss_torch.json"))
    classes = f"{h['classes']:,}" if h else "11,318"
    out.append(f"## 6. SoftTriple at SOP scale (C = {classes}, K = 2, batch 32, dim 512), forward + backward\n")
    if h and t:
        out += [f"- harness: {1e3 * h['median_s']:.2f} ms a step; GPU memory {fmt_smi(smi(work, 'sop_loss_h'))}",
                f"- PyTorch formula: {1e3 * t['median_s']:.2f} ms a step, allocator peak {t['peak_allocated_bytes'] / 2**20:.0f} MiB; "
                f"GPU memory {fmt_smi(smi(work, 'sop_loss_t'))}",
                f"- ratio harness / PyTorch: **{h['median_s'] / t['median_s']:.2f}**", ""]
    else:
        out.append("Missing output (see the part's log).\n")


def main(work, out_path, device, dry):
    out = [f"# bench/gpu/run.sh on {device}" + (" (dry run: small sizes)" if dry == "1" else ""), ""]
    status = part_status(work)
    out += ["| part | status | seconds |", "|---|---|---|"]
    out += [f"| {n} | {s} | {sec} |" for n, (s, sec) in status.items()] + [""]
    out.append("## 1. Doctor\n")
    doc = os.path.join(work, "doctor.txt")
    out += ["```"] + ([line.rstrip() for line in open(doc)] if os.path.exists(doc) else ["(missing)"]) + ["```", ""]
    for section in (parity_section, paper_section, peer_section, sop_sections):
        try:
            section(work, out)
        except Exception as e:  # one part's odd output must not hide the others
            out.append(f"(this section could not be summarised: {type(e).__name__}: {e})\n")
    with open(out_path, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:5])
