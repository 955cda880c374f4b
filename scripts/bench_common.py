"""What the bench sections' report scripts share: reading sockperf's round
trip, ratios taken per round, and writing the report's markdown and chart."""
import re
import statistics
from pathlib import Path

from bench_chart import bar_chart


def sockperf_rtt(f: Path) -> dict | None:
    """p50 and p99 round trip (µs) of a sockperf ping-pong log, or None if
    the run failed."""
    if not f.exists():
        return None
    text, got = f.read_text(), {}
    for p, key in (("50.000", "p50"), ("99.000", "p99")):
        m = re.search(rf"percentile {re.escape(p)} =\s+([0-9.]+)", text)
        if not m:
            return None
        got[key] = float(m.group(1))
    return got


def sizes_and_rounds(raw: Path) -> tuple[list[int], list[int]]:
    """The sizes a section measured (RAW/sizes.txt) and the rounds whose
    files are in RAW (NAME.rN.EXT); either may be empty."""
    sizes = [int(s) for s in (raw / "sizes.txt").read_text().split()] if (raw / "sizes.txt").exists() else []
    rounds = sorted({int(m.group(1)) for p in raw.glob("*.r*.*") if (m := re.search(r"\.r(\d+)\.", p.name))})
    return sizes, rounds


def median_of(values: list, digits: int = 1) -> float | None:
    """The median of the values present (None skipped), rounded; None if
    none is."""
    values = [v for v in values if v is not None]
    return round(statistics.median(values), digits) if values else None


def per_round_ratio(num: list, den: list, digits: int = 2):
    """The median of the per-round ratios num/den and their range, skipping
    rounds where either is missing; (None, None) if none is left."""
    each = [n / d for n, d in zip(num, den) if n is not None and d]
    if not each:
        return None, None
    return round(statistics.median(each), digits), [round(min(each), digits), round(max(each), digits)]


def finish(out: Path, md: str, title: str, columns: list[str], rows: list) -> int:
    """Writes OUT/results.md and the chart; the script's exit status."""
    (out / "results.md").write_text(md)
    print(md)
    if not bar_chart(out, title, columns, rows):
        return 1
    print(f"wrote {out / 'results.md'}, {out / 'results.json'}, {out / 'results.png'}")
    return 0
