#!/usr/bin/env bash
# The GPU proof in one command: at most 8 minutes on an H200, every figure into $OUT, nothing from
# the network (it generates its own data). Parts, each with its own time limit inside one overall
# deadline, each reporting what it got even when another fails:
#   1 doctor        CUDA and cuDNN available, the GPU's name and memory
#   2 parity        every loss kind forward + backward CPU against the device; `harness eval` CPU
#                   against the device on the same embeddings (R@K equal, NMI within 0.005); a
#                   short run with bf16 on and off (loss curves side by side, within 5 % per epoch)
#   3 paper         BN-Inception (random init) at 224 px, batch 32, SoftTriple K=10 λ20 γ0.1 τ0.2
#                   δ0.01 on a generated folder of CUB's shape (100 classes / 5,864 JPEGs of about
#                   500 × 375 to train, 100 / 5,924 to test) through the JPEG pipeline with workers,
#                   3 epochs and the full evaluation: images/s, GPU utilisation (nvidia-smi), time
#                   waiting for data, peak GPU memory, the projected time of the paper's 50 epochs
#   4 peer          the same epochs with ResNet-50 in the harness and in PyTorch (torchvision
#                   transforms, a DataLoader with the same workers, the same loss): batch 32, and
#                   batch 128 with bf16; ratio = harness / PyTorch epoch time
#   5 sop-eval      60,502 × 512 embeddings through `harness eval` against torch.mm + topk in chunks
#   6 sop-loss      SoftTriple at C = 11,318, K = 2, batch 32, dim 512, forward + backward, against
#                   the PyTorch formula
# Then bench/gpu/summarize.py writes $OUT/summary.md.
#
# Usage: bash bench/gpu/run.sh [--dry-run] [--device D] [--harness PATH] [--budget SECONDS]
#   --dry-run   small sizes on the CPU (device cpu unless --device says otherwise; the epoch comparison
#               at 112 px), every part end to end, limits doubled: how this script is tested on a
#               machine without a GPU (`make gpu-dry-run`)
#   --harness   the binary (default: $HARNESS, else .gpu/harness.gz unpacked (make gpu-pack),
#               .gpu/harness, target/release/harness or target/debug/harness, the first that exists)
#   --budget    the overall deadline in seconds (default 450 with a GPU, 900 for --dry-run)
# Environment: OUT (default a new temporary folder), PYTHON (default python3; it needs torch,
# torchvision, Pillow and numpy), TORCH_LIB (the libtorch folder to load; default the GPU machine's
# /opt/torch/.venv/lib/python3.12/site-packages/torch/lib when it exists).
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DRY=0 DEVICE="" H="${HARNESS:-}" BUDGET="" UNPACKED=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --device) DEVICE="$2"; shift ;;
    --harness) H="$2"; shift ;;
    --budget) BUDGET="$2"; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$H" ] && [ -f .gpu/harness.gz ]; then
  # make gpu-pack's binary, gzipped to fit the 64 MiB a device call carries (the test profile's
  # binary is about 60 MB stripped, 13 MB gzipped).
  H=$(mktemp /tmp/harness.XXXXXX) && UNPACKED=$H && gzip -dc .gpu/harness.gz > "$H" && chmod +x "$H" ||
    { echo "error: cannot unpack .gpu/harness.gz" >&2; exit 2; }
fi
if [ -z "$H" ]; then
  for c in .gpu/harness target/release/harness target/debug/harness; do [ -x "$c" ] && { H=$c; break; }; done
fi
[ -n "$H" ] && [ -x "$H" ] || { echo "error: no harness binary (build one with make build, or pass --harness PATH)" >&2; exit 2; }
H=$(realpath "$H")
[ -n "$DEVICE" ] || { [ $DRY = 1 ] && DEVICE=cpu || DEVICE=cuda; }
[ -n "$BUDGET" ] || { [ $DRY = 1 ] && BUDGET=900 || BUDGET=450; }
PYTHON=${PYTHON:-python3}
TORCH_LIB=${TORCH_LIB:-/opt/torch/.venv/lib/python3.12/site-packages/torch/lib}
if [ -d "$TORCH_LIB" ]; then export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; fi
OUT=${OUT:-$(mktemp -d)}
WORK=$(mktemp -d /tmp/gpu-run.XXXXXX)
mkdir -p "$OUT"
export H DEVICE DRY PYTHON WORK ROOT
trap 'rm -rf "$WORK" ${UNPACKED:+"$UNPACKED"}' EXIT

# Sizes: the issue's on a GPU, a few seconds each for --dry-run.
if [ $DRY = 1 ]; then
  export CUB_ARGS="--classes 4 --train 32 --test 32 --size 160x120 --jobs 2" CUB_SUBSET=true
  export PAPER_EPOCHS=1 PAPER_BATCH=8 PEER_EPOCHS=1 PEER_CASES="8:false 16:true" WORKERS=2 SIZE=224 PEER_SIZE=112 SCALE=2
  export PARITY_N=1000 SOP_N=3000 SOP_CLASSES=600 SOP_LOSS_CLASSES=500 BF16_EPOCHS=2 ITERS=3
else
  export CUB_ARGS="" CUB_SUBSET=false
  export PAPER_EPOCHS=3 PAPER_BATCH=32 PEER_EPOCHS=2 PEER_CASES="32:false 128:true" WORKERS=12 SIZE=224 PEER_SIZE=224 SCALE=1
  export PARITY_N=10000 SOP_N=60502 SOP_CLASSES=11316 SOP_LOSS_CLASSES=11318 BF16_EPOCHS=6 ITERS=20
fi

# A GPU sampler for one part (utilisation %, memory MiB every 200 ms), stopped by the part.
smi_start() {
  command -v nvidia-smi > /dev/null || return 0
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits -lms 200 > "$WORK/$1.smi" 2>/dev/null &
  echo $! > "$WORK/$1.smi.pid"
}
smi_stop() {
  [ -f "$WORK/$1.smi.pid" ] && kill "$(cat "$WORK/$1.smi.pid")" 2>/dev/null
  rm -f "$WORK/$1.smi.pid"
  return 0
}
export -f smi_start smi_stop

# A harness run file: BACKBONE NORMALIZATION BATCH EPOCHS BF16 SIZE (the paper's SoftTriple and Adam).
run_file() {
  cat <<YAML
data: {kind: cub, root: $WORK/cub, subset: $CUB_SUBSET}
model: {backbone: {kind: $1}, pretrained: false}
loss: {kind: soft_triple, centers_per_class: 10, la: 20, gamma: 0.1, tau: 0.2, margin: 0.01}
dim: 512
seed: 0
train: {epochs: $4, batch_size: $3, sampler: {kind: shuffled}, optimizer: {kind: adam, eps: 0.01},
  lr: {backbone: 0.0001, head: 0.0001, centers: 0.01}, weight_decay: 0.0001, lr_step_epochs: 20,
  lr_gamma: 0.1, workers: $WORKERS, bf16: $5, transform: {size: $6, resize: $(($6 * 8 / 7)), normalization: $2}}
eval: {recall_at: [1, 2, 4, 8], kmeans_restarts: 1}
YAML
}
export -f run_file

part_doctor() {
  # What the binary resolves its libraries to (a "not found" here explains a binary that cannot start).
  ldd "$H" | grep -E "not found|torch|c10|libstdc|libc\.so" | tee "$WORK/ldd.txt"
  "$H" doctor | tee "$WORK/doctor.txt"
  command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$WORK/doctor.txt"
  if [ "$DEVICE" != cpu ]; then
    grep -q "CUDA available   yes" "$WORK/doctor.txt" || {
      echo "FAIL: CUDA not available to the harness; PyTorch's view:"
      "$PYTHON" -c "import torch; print(torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.device_count())"
      return 1
    }
    grep -q "cuDNN available  yes" "$WORK/doctor.txt" || { echo "FAIL: cuDNN not available"; return 1; }
  fi
}

part_parity() {
  local rc=0
  "$H" loss-check --parity --device "$DEVICE" | tee "$WORK/loss_parity.md" || rc=1
  "$PYTHON" "$ROOT/bench/gpu/parts.py" embeddings "$WORK/parity" "$PARITY_N" 128 $((PARITY_N / 5)) || return 1
  for d in cpu "$DEVICE"; do
    "$H" eval --embeddings "$WORK/parity/emb.npy" --labels "$WORK/parity/labels.npy" --recall-at 1,10,100 \
      --restarts 1 --device "$d" --format json > "$WORK/parity/eval_${d//:/_}.json" || rc=1
  done
  "$PYTHON" "$ROOT/bench/gpu/parts.py" eval-compare "$WORK/parity/eval_cpu.json" "$WORK/parity/eval_${DEVICE//:/_}.json" \
    | tee "$WORK/eval_parity.json" || rc=1
  for bf in false true; do
    cat > "$WORK/bf16_$bf.yaml" <<YAML
data: {kind: parts, classes: 48, views_per_class: 3, images_per_view: 12, resolution: 32, clutter: 1, noise: 0.05, seed: 2019}
model: {backbone: {kind: small_cnn, channels: [16, 32, 64]}}
loss: {kind: soft_triple, centers_per_class: 4}
dim: 64
seed: 0
train: {epochs: $BF16_EPOCHS, batch_size: 64, sampler: {kind: class_balanced, m: 4}, lr: {backbone: 0.003, head: 0.003}, bf16: $bf}
eval: {recall_at: [1, 2, 4, 8], kmeans_restarts: 1}
YAML
    "$H" train "$WORK/bf16_$bf.yaml" --out "$WORK/bf16_$bf" --device "$DEVICE" > /dev/null || rc=1
  done
  return $rc
}

part_paper() {
  "$PYTHON" "$ROOT/bench/gpu/make_cub_like.py" "$WORK/cub" $CUB_ARGS || return 1
  "$H" data check --kind cub --root "$WORK/cub" $([ "$CUB_SUBSET" = true ] && echo --subset) | tail -3
  run_file bn_inception bn_inception "$PAPER_BATCH" "$PAPER_EPOCHS" false "$SIZE" > "$WORK/paper.yaml"
  smi_start paper
  "$H" train "$WORK/paper.yaml" --out "$WORK/paper" --device "$DEVICE"
  local rc=$?
  smi_stop paper
  return $rc
}

part_peer() {
  [ -f "$WORK/cub/images.txt" ] || "$PYTHON" "$ROOT/bench/gpu/make_cub_like.py" "$WORK/cub" $CUB_ARGS || return 1
  local rc=0 b bf case
  for case in $PEER_CASES; do
    b=${case%%:*} bf=${case##*:}
    run_file resnet50 imagenet "$b" "$PEER_EPOCHS" $bf "$PEER_SIZE" > "$WORK/peer_h$b.yaml"
    smi_start "peer_h$b"
    "$H" train "$WORK/peer_h$b.yaml" --out "$WORK/peer_h$b" --device "$DEVICE" > /dev/null || rc=1
    smi_stop "peer_h$b"
    smi_start "peer_t$b"
    "$PYTHON" "$ROOT/bench/gpu/peer_epoch.py" "$WORK/cub" --batch "$b" --workers "$WORKERS" --epochs "$PEER_EPOCHS" \
      --device "$DEVICE" --size "$PEER_SIZE" $([ $bf = true ] && echo --bf16) | tee "$WORK/peer_t$b.json" || rc=1
    smi_stop "peer_t$b"
  done
  return $rc
}

part_sop_eval() {
  "$PYTHON" "$ROOT/bench/gpu/parts.py" embeddings "$WORK/sop" "$SOP_N" 512 "$SOP_CLASSES" || return 1
  local rc=0 start
  smi_start sop_eval_h
  start=$(date +%s%N)
  "$H" eval --embeddings "$WORK/sop/emb.npy" --labels "$WORK/sop/labels.npy" --recall-at 1,10,100 --restarts 1 \
    --device "$DEVICE" --memory-budget 4GiB --format json > "$WORK/sop_eval_harness.json" || rc=1
  echo "{\"seconds\": $((($(date +%s%N) - start) / 1000000))e-3}" > "$WORK/sop_eval_harness_time.json"
  smi_stop sop_eval_h
  smi_start sop_eval_t
  "$PYTHON" "$ROOT/bench/gpu/parts.py" torch-eval "$WORK/sop/emb.npy" "$WORK/sop/labels.npy" "$DEVICE" 1,10,100 \
    | tee "$WORK/sop_eval_torch.json" || rc=1
  smi_stop sop_eval_t
  return $rc
}

part_sop_loss() {
  local rc=0
  smi_start sop_loss_h
  "$H" loss-bench --loss '{kind: soft_triple, centers_per_class: 2}' --classes "$SOP_LOSS_CLASSES" --batch 32 --dim 512 \
    --iters "$ITERS" --device "$DEVICE" | tee "$WORK/sop_loss_harness.json" || rc=1
  smi_stop sop_loss_h
  smi_start sop_loss_t
  "$PYTHON" "$ROOT/bench/gpu/parts.py" torch-softtriple "$SOP_LOSS_CLASSES" 2 32 512 "$DEVICE" "$ITERS" \
    | tee "$WORK/sop_loss_torch.json" || rc=1
  smi_stop sop_loss_t
  return $rc
}
export -f part_doctor part_parity part_paper part_peer part_sop_eval part_sop_loss

DEADLINE=$((SECONDS + BUDGET))
# part NAME LIMIT: runs part_NAME under min(LIMIT × SCALE, time left), in its own process group (timeout
# kills the whole group, samplers included); its log goes to $WORK/NAME.log and the tail here.
part() {
  local name=$1 limit=$(($2 * SCALE)) left=$((DEADLINE - SECONDS)) start=$SECONDS rc
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -lt 10 ]; then
    echo "$name skipped 0 no time left" >> "$WORK/parts.txt"
    echo "== $name: skipped, no time left"
    return
  fi
  echo "== $name (limit ${limit}s)"
  timeout --kill-after=5 "$limit" bash -c "part_$name" > "$WORK/$name.log" 2>&1
  rc=$?
  local status=ok
  [ $rc = 0 ] || status=failed
  [ $rc = 124 ] || [ $rc = 137 ] && status=timeout
  echo "$name $status $((SECONDS - start)) rc=$rc" >> "$WORK/parts.txt"
  tail -n 25 "$WORK/$name.log"
  echo "-- $name: $status in $((SECONDS - start)) s"
}

echo "bench/gpu/run.sh: device $DEVICE, harness $H, budget ${BUDGET}s, dry run $DRY, work in $WORK"
[ -d "$TORCH_LIB" ] && echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
# Limits in seconds (doubled for --dry-run on a CPU), in the order the parts run; they add up to the
# 450 s default budget.
part doctor 20
# Without a working device every other part would fail too: they are skipped, so the call ends now
# and keeps the device time for a rerun after the fix.
no_device=0
[ "$DEVICE" != cpu ] && ! grep -q "^doctor ok" "$WORK/parts.txt" && no_device=1 && echo "== doctor failed on $DEVICE: the other parts are skipped"
for p in parity:75 paper:120 peer:140 sop_eval:50 sop_loss:35; do
  if [ $no_device = 1 ]; then echo "${p%%:*} skipped 0 doctor failed" >> "$WORK/parts.txt"; else part "${p%%:*}" "${p##*:}"; fi
done
"$PYTHON" "$ROOT/bench/gpu/summarize.py" "$WORK" "$OUT/summary.md" "$DEVICE" "$DRY"
cat "$OUT/summary.md"
tar -C "$WORK" -czf "$OUT/work.tar.gz" --exclude='cub' --exclude='*.npy' --exclude='work' . 2>/dev/null
cp "$WORK/parts.txt" "$OUT/parts.txt"
echo "wrote $OUT/summary.md, $OUT/parts.txt and $OUT/work.tar.gz (logs, records, samples) in $SECONDS s"
! grep -qv " ok " "$WORK/parts.txt"
