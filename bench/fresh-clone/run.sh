#!/usr/bin/env bash
# A newcomer's first hour, timed step by step: clones SOURCE (a path or URL; default: this checkout)
# into a scratch folder, then `make setup`, `make build`, `make quickstart`, `make test` and
# `CI=true bash .ci/run`, each timed, with the machine's yardsticks (bench/sgemm.py and
# bench/quickstart-cut/eager_step.py) before and after the quickstart, and its runs' recorded compute
# (the README's "How long they take" table: compare with the reference records' 285 s). Deletes the
# clone at the end (KEEP=1 keeps it).
#   bash bench/fresh-clone/run.sh [SOURCE]            on the machine as it is
#   SLOW=1 bash bench/fresh-clone/run.sh [SOURCE]     beside two busy shell loops at nice 2, the
#                                                     emulated slow machine of the README's table
# Logs of each step go to $LOGS (default /tmp/fresh-clone-logs).
set -uo pipefail
src=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
dir=${DIR:-/tmp/fresh-clone}
logs=${LOGS:-/tmp/fresh-clone-logs}
mkdir -p "$logs"
loops=()
stop_loops() { for p in "${loops[@]}"; do kill "$p" 2>/dev/null; done; }
trap 'stop_loops; [ "${KEEP:-0}" = 1 ] || rm -rf "$dir"' EXIT
if [ "${SLOW:-0}" = 1 ]; then
  for _ in 1 2; do nice -n 2 bash -c 'while :; do :; done' & loops+=($!); done
  echo "emulating a slow machine: busy loops ${loops[*]} at nice 2"
fi
rm -rf "$dir" && git clone -q "$src" "$dir" && cd "$dir" || exit 1
echo "commit: $(git log --oneline -1)"
t0=$(date +%s)
step() { # NAME COMMAND...: runs it with its output in $logs/NAME.log, prints its wall time
  local name=$1 s rc; shift; s=$(date +%s)
  "$@" > "$logs/$name.log" 2>&1; rc=$?
  echo "$name: rc $rc, $(( $(date +%s) - s )) s, $(grep -c '^ *Compiling' "$logs/$name.log") crates compiled"
  return $rc
}
yardsticks() {
  .venv/bin/python3 bench/sgemm.py 2>&1 | tail -2
  .venv/bin/python3 bench/quickstart-cut/eager_step.py 2>&1 | tail -1
}
step setup make setup || exit 1
# setup leaves cargo compiling in the background (Makefile): the yardsticks wait for the build.
step build make build || exit 1
yardsticks
step quickstart make quickstart || exit 1
echo "from nothing through the quickstart: $(( $(date +%s) - t0 )) s"
grep -E "sweeps:|agreement:" "$logs/quickstart.log"
python3 - <<'EOF'
import glob, json
def find(x, key):
    if isinstance(x, dict):
        for k, v in x.items():
            if k == key:
                return v
            if (y := find(v, key)) is not None:
                return y
    return None
total = 0.0
for f in glob.glob("results/quickstart/runs/*.json"):
    o = json.load(open(f))["outcome"]
    total += (find(o, "train_seconds") or 0) + (find(o, "eval_seconds") or 0)
print(f"quickstart runs' recorded compute: {total:.0f} s (reference records: 285 s)")
EOF
yardsticks
step test make test
grep -E "^test result" "$logs/test.log" | awk '{p += $4; f += $6} END {print "tests: " p " passed, " f " failed"}'
step ci env CI=true bash .ci/run
echo "total: $(( $(date +%s) - t0 )) s"
