#!/usr/bin/env bash
# Copies into a sweep's results folder the records another results folder already holds for the
# same runs (same id: the same computation), so that `make power` does not train again the
# quickstart's seeds 0–4. A record already there is kept; nothing is copied when FROM is missing.
#   bash bench/quickstart/reuse.sh HARNESS FROM CONFIG RESULTS
set -euo pipefail
H=$1 FROM=$2 CONFIG=$3 RESULTS=$4
[ -d "$FROM/runs" ] || exit 0
mkdir -p "$RESULTS/runs"
copied=0
# `harness plan` prints "| # | id | run |" rows; a record file is named <run>-<id>.json.
while read -r id slug; do
  src="$FROM/runs/$slug-$id.json"
  dst="$RESULTS/runs/$slug-$id.json"
  if [ -f "$src" ] && [ ! -e "$dst" ]; then
    cp "$src" "$dst.tmp" && mv "$dst.tmp" "$dst"
    copied=$((copied + 1))
  fi
done < <("$H" plan "$CONFIG" | awk -F'|' 'NR > 2 { gsub(/ /, "", $3); gsub(/ /, "", $4); print $3, $4 }')
echo "reuse: $copied record(s) of $CONFIG taken from $FROM"
