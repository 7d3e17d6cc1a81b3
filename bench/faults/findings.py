"""What a `harness regress` report flagged, for bench/faults/run.sh.

Reads the Markdown a check wrote (-o FILE) and prints one table cell: each flagged quantity as
"<cell's loss> <quantity> <drop|rise>", the first four, then how many more; "–" when nothing was.
    python3 findings.py REPORT.md
"""
import sys


def flagged(text):
    """(cell, quantity, direction) of every row of the report's Regressions section."""
    if "## Regressions" not in text:
        return []
    section = text.split("## Regressions", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cols = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cols) == 6 and cols[0] not in ("cell", "") and not set(cols[0]) <= set("-"):
            rows.append((cols[0], cols[1], cols[4]))
    return rows


def main():
    rows = flagged(open(sys.argv[1]).read())
    if not rows:
        print("–")
        return
    # "views d64 SoftTriple K=4" -> "SoftTriple K=4": the data set and size are the same in every cell.
    names = [f"{' '.join(c.split(' ')[2:])} {q} {d}" for c, q, d in rows]
    more = f" (+{len(names) - 4} more)" if len(names) > 4 else ""
    print("; ".join(names[:4]) + more)


if __name__ == "__main__":
    main()
