#!/usr/bin/env bash
# Runs every fault and bad input of reports/reliability.md against the harness binary and writes
# that report: for each case the exit code and the first line of what the harness said.
#   bash bench/reliability/catalogue.sh [HARNESS_BINARY]   (default target/debug/harness; needs root
#   for the full-disk case, which mounts a tmpfs)
set -uo pipefail
cd "$(dirname "$0")/../.."
H=${1:-target/debug/harness}
[ -x "$H" ] || { echo "error: $H not found: build it first (cargo build -p harness)" >&2; exit 1; }
H=$(realpath "$H")
REPO=$(pwd)
W=$(mktemp -d /tmp/harness-catalogue.XXXXXX)
trap 'umount "$W/disk" 2>/dev/null; rm -rf "$W"' EXIT
ROWS=()
NPY=harness/tests/fixtures/npy

# case NAME EXPECTED_RC COMMAND...: runs it, keeps rc and the message's first line.
case_() {
  local name=$1 want=$2; shift 2
  local out rc
  out=$("$@" 2>&1); rc=$?
  local msg clean
  clean=$(printf '%s\n' "$out" | sed -E 's/\x1b\[[0-9;]*m//g; s/^[0-9T:.-]+Z +//')
  clean=${clean//$W/W}
  msg=$(printf '%s\n' "$clean" | grep -m1 -A1 '^error:' || printf '%s\n' "$clean" | grep -m1 'WARN' || printf '%s\n' "$clean" | tail -n1)
  # A list of problems: its first entry too.
  msg=$(printf '%s\n' "$msg" | head -2 | sed -E 's/^ +//' | paste -sd' ' | sed -E 's/\|/\\|/g' | cut -c1-230)
  local ok="yes"; [ "$rc" = "$want" ] || ok="**no (expected $want)**"
  ROWS+=("| $name | $rc | $ok | \`$msg\` |")
}

tiny_sweep() { # tiny_sweep FILE [extra yaml]
  cat > "$1" <<EOF
name: cat
data:
  - {kind: synthetic, classes: 6, modes_per_class: 2, images_per_mode: 4, resolution: 16, seed: 1}
losses: [{kind: softmax_norm}, {kind: soft_triple, centers_per_class: 2}]
dims: [16]
seeds: [0, 1, 2]
model: {backbone: {kind: small_cnn, channels: [8]}}
train: {device: cpu, epochs: 4, batch_size: 12, sampler: {kind: class_balanced, m: 2}}
eval: {recall_at: [1, 2], kmeans_restarts: 1}
${2:-}
EOF
}
tiny_sweep "$W/s.yaml"

# 1. Two sweeps on one folder at once.
( "$H" sweep "$W/s.yaml" --results "$W/dup" >/dev/null 2>&1; echo $? > "$W/rc1" ) &
sleep 0.3
( "$H" sweep "$W/s.yaml" --results "$W/dup" >/dev/null 2>&1; echo $? > "$W/rc2" ) &
wait
n=$(ls "$W/dup/runs" | wc -l); failed=$(grep -l '"status": "failed"' "$W/dup/runs"/*.json 2>/dev/null | wc -l)
ROWS+=("| 1. two sweeps on one results folder at once | $(cat "$W/rc1"), $(cat "$W/rc2") | $([ "$n" = 6 ] && [ "$failed" = 0 ] && echo yes || echo '**no**') | \`$n records for 6 runs, $failed failed\` |")

# 2. A checkpoint that cannot be written (its path is a folder).
id=$("$H" plan "$W/s.yaml" | awk -F'|' 'NR==3 {gsub(/ /,"",$3); print $3}')
mkdir -p "$W/infra/work/$id/checkpoint.ot/x"
case_ "2. infrastructure fault mid-sweep (checkpoint path blocked)" 1 "$H" sweep "$W/s.yaml" --results "$W/infra"
ROWS+=("| 2b. … records written for it | – | $([ -z "$(ls "$W/infra/runs" 2>/dev/null)" ] && echo yes || echo '**no**') | \`$(ls "$W/infra/runs" 2>/dev/null | wc -l) records (none expected: not a failed run)\` |")

# 3. A full disk.
mkdir -p "$W/disk"
if mount -t tmpfs -o size=600k tmpfs "$W/disk" 2>/dev/null; then
  tiny_sweep "$W/big.yaml"; sed -i 's/channels: \[8\]/channels: [64, 128]/; s/seeds: \[0, 1, 2\]/seeds: [0]/' "$W/big.yaml"
  case_ "3. disk full during a checkpoint (600 KB tmpfs)" 1 "$H" sweep "$W/big.yaml" --results "$W/disk/r"
  ROWS+=("| 3b. … temporary files left | – | $([ -z "$(find "$W/disk" -name '*.tmp')" ] && echo yes || echo '**no**') | \`$(find "$W/disk" -name '*.tmp' | wc -l) left\` |")
  umount "$W/disk"
else
  ROWS+=("| 3. disk full | – | not run | \`needs root to mount a tmpfs\` |")
fi

# 4. Upper-case extensions in a folder data set.
for c in a b c d; do mkdir -p "$W/folder/$c"; cp harness/tests/fixtures/datasets/folder/*/*.jpg "$W/folder/$c/" 2>/dev/null; rm -f "$W/folder/$c/corrupt.jpg"; done
for f in "$W"/folder/a/*.jpg; do mv "$f" "${f%.jpg}.JPG"; done
case_ "4. folder data set with .JPG files" 0 "$H" data check --kind folder --root "$W/folder"

# 5. A truncated JPEG.
first=$(ls "$W"/folder/b/*.jpg | head -1); size=$(stat -c %s "$first"); head -c $((size * 7 / 10)) "$first" > "$first.cut" && mv "$first.cut" "$first"
case_ "5. truncated JPEG, data check --decode" 1 "$H" data check --kind folder --root "$W/folder" --decode

# 6. A copied record.
"$H" sweep "$W/s.yaml" --results "$W/copy" >/dev/null 2>&1
cp "$(ls "$W"/copy/runs/*.json | head -1)" "$W/copy/runs/backup.json"
case_ "6. a copied record (report)" 0 "$H" report "$W/copy" -o "$W/copy.md"
ROWS+=("| 6b. … runs counted in the report | – | $(grep -q '| 6 finished' "$W/copy.md" && echo yes || echo '**no**') | \`$(grep -m1 '^| runs' "$W/copy.md" | tr -s ' ' | sed 's/|/\\|/g')\` |")

# 7. Embeddings at extreme scales, and zero rows.
.venv/bin/python3 - "$W" "$NPY" <<'EOF'
import numpy as np, sys
w, npy = sys.argv[1], sys.argv[2]
e = np.load(f"{npy}/emb.npy"); np.save(f"{w}/big.npy", (e * 1e20).astype(np.float32)); np.save(f"{w}/tiny.npy", (e * 1e-30).astype(np.float32))
z = e.copy(); z[3] = 0; np.save(f"{w}/zero.npy", z)
np.save(f"{w}/unique.npy", np.arange(len(e), dtype=np.int64))
EOF
r0=$("$H" eval --embeddings $NPY/emb.npy --labels $NPY/labels.npy --no-nmi --format json | grep -A3 recall_at_k | tr -d ' \n')
r1=$("$H" eval --embeddings "$W/big.npy" --labels $NPY/labels.npy --no-nmi --format json | grep -A3 recall_at_k | tr -d ' \n')
r2=$("$H" eval --embeddings "$W/tiny.npy" --labels $NPY/labels.npy --no-nmi --format json | grep -A3 recall_at_k | tr -d ' \n')
ROWS+=("| 7. embeddings × 1e20 and × 1e-30 | 0 | $([ "$r0" = "$r1" ] && [ "$r0" = "$r2" ] && echo yes || echo '**no**') | \`Recall@K equal to the unscaled embeddings': $([ "$r0" = "$r1" ] && [ "$r0" = "$r2" ] && echo equal || echo differ)\` |")
case_ "7b. an all-zero embedding row" 1 "$H" eval --embeddings "$W/zero.npy" --labels $NPY/labels.npy --no-nmi

# 8. Settings that cannot run.
tiny_sweep "$W/bad.yaml"; sed -i 's/batch_size: 12/batch_size: 0/; s/classes: 6,/classes: 0,/; s/m: 2}/m: 0}/; s/recall_at: \[1, 2\]/recall_at: [1, 1000]/' "$W/bad.yaml"
case_ "8. batch_size 0, classes 0, m 0, recall_at 1000 (plan)" 1 "$H" plan "$W/bad.yaml"
tiny_sweep "$W/bigm.yaml"; sed -i 's/m: 2}/m: 12}/; s/batch_size: 12/batch_size: 24/' "$W/bigm.yaml"
case_ "8b. m larger than the images per class (plan)" 1 "$H" plan "$W/bigm.yaml"

# 9. A truncated checkpoint.
mkdir -p "$W/ck/work/$id"; head -c 5000 /dev/urandom > "$W/ck/work/$id/checkpoint.ot"
case_ "9. an unreadable checkpoint (sweep)" 0 "$H" sweep "$W/s.yaml" --results "$W/ck"

# 10. Smaller defects.
tiny_sweep "$W/many.yaml"; for i in $(seq 1 3000); do echo "junk$i: 1" >> "$W/many.yaml"; done
"$H" plan "$W/many.yaml" > "$W/many.out" 2>&1; rc=$?
ROWS+=("| 10a. 3,000 unknown keys | $rc | $([ "$rc" = 1 ] && [ "$(wc -l < "$W/many.out")" -lt 60 ] && echo yes || echo '**no**') | \`$(head -1 "$W/many.out" | sed "s|$W|W|g" | cut -c1-80) (50 listed, then) $(tail -1 "$W/many.out" | sed -E 's/^ +//'); $(wc -l < "$W/many.out") lines in all\` |")
seq_yaml="$W/pipe.yaml"; tiny_sweep "$seq_yaml"; sed -i "s/seeds: \[0, 1, 2\]/seeds: [$(seq -s, 0 2999)]/" "$seq_yaml"
"$H" plan "$seq_yaml" 2>"$W/pipe.err" | head -1 >/dev/null; rc=${PIPESTATUS[0]}
ROWS+=("| 10b. plan … \\| head | $rc | $([ "$rc" != 101 ] && ! grep -q panicked "$W/pipe.err" && echo yes || echo '**no**') | \`killed by SIGPIPE (141), no panic\` |")
tiny_sweep "$W/dots.yaml"; sed -i 's/^name: cat/name: ../' "$W/dots.yaml"
case_ "10c. name: .." 1 "$H" plan "$W/dots.yaml"
sep=$("$H" eval --embeddings $NPY/emb.npy --labels $NPY/labels.npy --no-nmi | grep -m1 -- '---')
ROWS+=("| 10d. eval Markdown separator row | 0 | $([[ "$sep" != *'||'* ]] && echo yes || echo '**no**') | \`${sep//|/\\|}\` |")
case_ "10e. every label unique" 1 "$H" eval --embeddings $NPY/emb.npy --labels "$W/unique.npy" --no-nmi
mkdir -p "$W/utf8/a" "$W/utf8/b"; cp "$(ls "$W"/folder/c/*.jpg | head -1)" "$W/utf8/a/x.jpg"; cp "$W/utf8/a/x.jpg" "$W/utf8/b/$(printf 'caf\xe9').jpg"
case_ "10f. a file name that is not UTF-8" 1 "$H" data check --kind folder --root "$W/utf8"

# Bad input that already had clear answers.
case_ "missing data set root" 1 "$H" data check --kind cub --root "$W/nowhere"
case_ "float64 embeddings" 1 "$H" eval --embeddings $NPY/emb_float64.npy --labels $NPY/labels.npy
case_ "NaN in embeddings" 1 "$H" eval --embeddings $NPY/emb_nan.npy --labels $NPY/labels.npy
case_ "unknown device" 1 "$H" sweep "$W/s.yaml" --device gpu7 --results "$W/dev"
tiny_sweep "$W/typo.yaml" "epochz: 3"
case_ "misspelt top-level key" 1 "$H" plan "$W/typo.yaml"
tiny_sweep "$W/changed.yaml"; sed -i 's/seeds: \[0, 1, 2\]/seeds: [0, 1, 2, 3]/' "$W/changed.yaml"
case_ "changed sweep file, same folder" 1 "$H" sweep "$W/changed.yaml" --results "$W/copy"
tiny_sweep "$W/fail.yaml"; sed -i 's|  - {kind: synthetic.*|  - {kind: features, train_features: gone/a.npy, train_labels: gone/b.npy, test_features: gone/c.npy, test_labels: gone/d.npy}|' "$W/fail.yaml"
"$H" sweep "$W/fail.yaml" --results "$W/fail" >/dev/null 2>&1
case_ "a sweep whose runs failed, run again" 1 "$H" sweep "$W/fail.yaml" --results "$W/fail"

{
  echo "# Reliability: faults and bad inputs"
  echo
  echo "Written by \`bash bench/reliability/catalogue.sh\` ($(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD), $(nproc) cores). Each case runs"
  echo "the harness binary as a user would; *rc* is its exit code, *as expected* compares it (and, where"
  echo "marked, the files left behind) with what the case must give, and the last column is the first line"
  echo "the harness printed. Numbers refer to the items of the reliability issue."
  echo
  echo "| case | rc | as expected | what the harness said |"
  echo "|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  cat bench/reliability/figures.md
} > reports/reliability.md
echo "wrote reports/reliability.md ($(printf '%s\n' "${ROWS[@]}" | grep -c '\*\*no') unexpected)"
