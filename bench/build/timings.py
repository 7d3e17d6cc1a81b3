#!/usr/bin/env python3
"""Summarises `cargo build --timings` reports: unit-seconds in all, per crate, and polars' share.

    python3 bench/build/timings.py target/cargo-timings/cargo-timing-*.html

Each HTML report holds the units of one build (a JSON array `UNIT_DATA`); a unit's duration is the
seconds it took on one core, so the total is the build's CPU cost, not its wall time (printed
beside it when the report has it)."""
import json
import re
import sys


def units(path):
    text = open(path).read()
    data = json.loads(re.search(r"const UNIT_DATA = (\[.*?\]);\n", text, re.S).group(1))
    wall = re.search(r"<td>Total time:</td><td>([^<]*)</td>", text)
    return data, (wall.group(1) if wall else "?")


def main(paths):
    for path in paths:
        data, wall = units(path)
        per = {}
        for u in data:
            per[u["name"]] = per.get(u["name"], 0.0) + u["duration"]
        total = sum(per.values())
        polars = sum(v for k, v in per.items() if k.startswith("polars"))
        print(f"## {path}\n")
        print(f"{len(data)} units, {total:.0f} unit-seconds, wall {wall}; polars {polars:.0f} ({100 * polars / total:.0f} %)\n")
        print("| crate | unit-seconds |\n|---|---:|")
        for name, secs in sorted(per.items(), key=lambda x: -x[1])[:12]:
            print(f"| {name} | {secs:.1f} |")
        print()


if __name__ == "__main__":
    main(sys.argv[1:])
