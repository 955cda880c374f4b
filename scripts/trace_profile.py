#!/usr/bin/env python3
"""Where a traced test step spent its time.

    trace_profile.py TRACE.LOG [--top N]

Reads the xtrace of a bash step (tests/guest/batch.py writes one per step,
each command stamped with the time it started), charges each command the
time until the next one started, and prints the script lines (of the
scenario or of a helper it sourced) that took the most time in all, with
how often they ran.
"""

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path

LINE_RE = re.compile(r"^(\++)(\d+\.\d+) ([^:]*):(\d+): (.*)$")


def profile(text: str) -> list[tuple[float, int, str, str]]:
    """(seconds, count, where, a sample command), largest first."""
    events = []
    for line in text.splitlines():
        m = LINE_RE.match(line)
        if m:
            events.append((float(m[2]), f"{m[3].rsplit('/', 1)[-1]}:{m[4]}", m[5]))
    spent: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    sample: dict[str, str] = {}
    for (t, where, cmd), (t_next, _, _) in zip(events, events[1:]):
        spent[where] += t_next - t
        count[where] += 1
        sample.setdefault(where, cmd)
    return sorted(((spent[w], count[w], w, sample[w]) for w in spent), reverse=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace", type=Path)
    ap.add_argument("--top", type=int, default=20)
    args = ap.parse_args()
    rows = profile(args.trace.read_text(errors="replace"))
    total = sum(r[0] for r in rows)
    print(f"{total:8.1f} s in all")
    for seconds, n, where, cmd in rows[: args.top]:
        print(f"{seconds:8.1f} s {n:5d}x  {where:<28} {cmd[:80]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
