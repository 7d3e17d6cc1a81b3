#!/usr/bin/env bash
# GPU check, a few minutes on a CUDA machine: `harness doctor` must see CUDA and cuDNN; a short run
# on cuda must finish; CPU and GPU metrics must agree on the same embeddings.
# Usage: bash bench/gpu/check.sh   (after `make build`; run from the repository root)
set -euo pipefail
H=${HARNESS:-target/debug/harness}
OUT=${OUT:-$(mktemp -d)}
echo "== harness doctor"
$H doctor | tee "$OUT/doctor.txt"
grep -q "CUDA available   yes" "$OUT/doctor.txt" || { echo "FAIL: CUDA not available"; exit 1; }
grep -q "cuDNN available  yes" "$OUT/doctor.txt" || { echo "FAIL: cuDNN not available"; exit 1; }

echo "== a short run on cuda (and the same on cpu)"
cat > "$OUT/run.yaml" <<'YAML'
data: {kind: synthetic, classes: 16, modes_per_class: 3, images_per_mode: 6, resolution: 32, seed: 1}
model: {backbone: {kind: small_cnn, channels: [16, 32, 64]}}
loss: {kind: soft_triple, centers_per_class: 3}
dim: 64
seed: 0
train: {epochs: 4, batch_size: 32, sampler: {kind: class_balanced, m: 4}, lr: {backbone: 0.003, head: 0.003}}
eval: {recall_at: [1, 2, 4, 8], kmeans_restarts: 2}
YAML
/usr/bin/time -v $H train "$OUT/run.yaml" --out "$OUT/gpu" --device cuda 2> "$OUT/gpu_time.txt" | tee "$OUT/gpu_metrics.md"
grep -E "Elapsed|Maximum resident" "$OUT/gpu_time.txt" || true
grep -h '"device"' "$OUT"/gpu/runs/*.json | head -1

echo "== CPU vs GPU metrics on the same embeddings"
python3 - "$OUT" <<'PY'
import numpy as np, sys, os
out = sys.argv[1]
rng = np.random.default_rng(0)
labels = np.repeat(np.arange(2000), 5).astype(np.int64)
emb = (rng.standard_normal((2000, 128))[labels] + 1.3 * rng.standard_normal((10000, 128))).astype(np.float32)
np.save(os.path.join(out, "emb.npy"), emb); np.save(os.path.join(out, "labels.npy"), labels)
PY
for d in cpu cuda; do
  $H eval --embeddings "$OUT/emb.npy" --labels "$OUT/labels.npy" --recall-at 1,10,100 --restarts 1 --device $d --format json > "$OUT/eval_$d.json"
done
python3 - "$OUT" <<'PY'
import json, sys, os
out = sys.argv[1]
c, g = (json.load(open(os.path.join(out, f"eval_{d}.json"))) for d in ("cpu", "cuda"))
print("recall cpu ", c["retrieval"]["recall_at_k"]); print("recall cuda", g["retrieval"]["recall_at_k"])
print("MAP@R cpu %.6f cuda %.6f" % (c["retrieval"]["map_at_r"], g["retrieval"]["map_at_r"]))
print("NMI   cpu %.6f cuda %.6f" % (c["nmi"]["nmi"], g["nmi"]["nmi"]))
dr = max(abs(a[1] - b[1]) for a, b in zip(c["retrieval"]["recall_at_k"], g["retrieval"]["recall_at_k"]))
ok = dr <= 1e-3 and abs(c["nmi"]["nmi"] - g["nmi"]["nmi"]) <= 0.01
print("PASS" if ok else "FAIL", "max recall difference %.5f" % dr)
sys.exit(0 if ok else 1)
PY
