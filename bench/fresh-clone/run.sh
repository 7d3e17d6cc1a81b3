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
#                                                     (LOOPS=N: N loops instead of two; DUTY=P:
#                                                     each busy P % of every 100 ms, to calibrate
#                                                     the emulation to a given machine)
# Logs of each step go to $LOGS (default /tmp/fresh-clone-logs). UNTIL=quickstart stops after it.
set -uo pipefail
src=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
dir=${DIR:-/tmp/fresh-clone}
# Python for the yardsticks: YARD_PY, default this checkout's venv (after `make setup-full` there).
yard_py=${YARD_PY:-$(cd "$(dirname "$0")/../.." && pwd)/.venv/bin/python3}
logs=${LOGS:-/tmp/fresh-clone-logs}
mkdir -p "$logs"
loops=()
stop_loops() { for p in "${loops[@]}"; do kill "$p" 2>/dev/null; done; }
trap 'stop_loops; [ "${KEEP:-0}" = 1 ] || rm -rf "$dir"' EXIT
busy() { # one loop at nice 2: always busy, or busy DUTY % of every 100 ms
  if [ -n "${DUTY:-}" ]; then
    exec nice -n 2 python3 -c "import time
d = $DUTY / 100
while True:
    t = time.perf_counter()
    while time.perf_counter() - t < 0.1 * d:
        pass
    time.sleep(0.1 * (1 - d))"
  else
    exec nice -n 2 bash -c 'while :; do :; done'
  fi
}
if [ "${SLOW:-0}" = 1 ]; then
  for _ in $(seq "${LOOPS:-2}"); do busy & loops+=($!); done
  echo "emulating a slow machine: busy loops ${loops[*]} at nice 2${DUTY:+, each busy $DUTY % of the time}"
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
# The yardsticks import torch in Python, which the clone's `make setup` venv cannot (no CUDA
# libraries): they run with $yard_py (set above).
yardsticks() {
  "$yard_py" -c "import torch" 2>/dev/null || { echo "yardsticks skipped: $yard_py cannot import torch (make setup-full)"; return; }
  "$yard_py" bench/sgemm.py 2>&1 | tail -2
  "$yard_py" bench/quickstart-cut/eager_step.py 2>&1 | tail -1
}
step setup make setup || exit 1
# setup leaves cargo compiling in the background (Makefile): the yardsticks wait for the build.
step build make build || exit 1
yardsticks
step quickstart make quickstart || exit 1
echo "from nothing through the quickstart: $(( $(date +%s) - t0 )) s"
grep -E "sweeps:|agreement:" "$logs/quickstart.log"
QS_LOG="$logs/quickstart.log" python3 - <<'EOF'
import datetime, glob, json, os, re, statistics
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
# The sweep log: when the first report came, and how the announced time left compared with the end.
# (`harness sweep --jobs` passes its workers' lines on as "[worker k] <line>")
stamp = lambda line: datetime.datetime.fromisoformat(re.sub(r"^\[worker \d+\] ", "", line).split("Z", 1)[0][:26])
lines = open(os.environ["QS_LOG"]).read().splitlines()
runs = [(stamp(l), m.group(1)) for l in lines if (m := re.search(r"INFO \[\d+/\d+\] .*about (.+) left", l))]
first = [stamp(l) for l in lines if "INFO report of round 1 " in l]
end = [stamp(l) for l in lines if "INFO report of every round" in l]
if runs and first and end:
    print(f"first report {(first[0] - runs[0][0]).total_seconds():.0f} s after the first run")
    unit = {"second": 1, "minute": 60, "hour": 3600}
    def secs(text):
        n, u = text.split()[:2]
        return (1 if n in ("a", "an") else int(n)) * unit[u.rstrip("s")]
    ratio = [secs(left) / max((end[0] - t).total_seconds(), 1) for t, left in runs]
    near = sum(abs(r - 1) <= 0.25 for r in ratio)
    print(f"time left announced / actual: median {statistics.median(ratio):.2f}, min {min(ratio):.2f}, "
          f"max {max(ratio):.2f}; within 25 % in {near} of {len(ratio)} announcements")
EOF
yardsticks
[ "${UNTIL:-}" = quickstart ] && exit 0
step test make test
grep -E "^test result" "$logs/test.log" | awk '{p += $4; f += $6} END {print "tests: " p " passed, " f " failed"}'
step ci env CI=true bash .ci/run
echo "total: $(( $(date +%s) - t0 )) s"
