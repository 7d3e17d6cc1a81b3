"""What a `harness regress` report flagged, for bench/faults/run.sh.

Reads the Markdown a check wrote (-o FILE) and prints one table cell: each flagged quantity as
"<cell's loss> <quantity> <drop|rise>" and each cell it refused as "<cell's loss> not compared
(<why>)", the first four, then how many more; "–" when nothing was.
    python3 findings.py REPORT.md
"""
import sys


def rows(text, heading):
    """The body rows (lists of cells) of the table under `## heading`."""
    if f"## {heading}" not in text:
        return []
    section = text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    out = []
    for line in section.splitlines():
        cols = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cols) > 1 and cols[0] not in ("cell", "") and not set(cols[0]) <= set("-"):
            out.append(cols)
    return out


def loss(cell):
    """ "views d64 SoftTriple K=4" -> "SoftTriple K=4": the data set and size are the same in every cell."""
    return " ".join(cell.split(" ")[2:])


def main():
    text = open(sys.argv[1]).read()
    names = [f"{loss(r[0])} {r[1]} {r[4]}" for r in rows(text, "Regressions")]
    names += [f"{loss(r[0])} not compared ({r[1]})" for r in rows(text, "Not compared")]
    if not names:
        print("–")
        return
    more = f" (+{len(names) - 4} more)" if len(names) > 4 else ""
    print("; ".join(names[:4]) + more)


if __name__ == "__main__":
    main()
