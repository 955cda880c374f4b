#!/usr/bin/env python3
"""Summarise the aoe section of a `make bench` run.

    bench_aoe_report.py RAW_DIR OUT_DIR

RAW_DIR holds what tests/guest/bench-aoe.sh wrote: per initiator (aoei, the
Rust one on the storage personality; aoe, the kernel's aoe.ko), workload
and round, fio's JSON, and one iperf3 link-tcp.rROUND.json per round. Both
initiators served by the same vblade, one after the other in each round.
Each figure is the median of its rounds; each ratio the median of the
per-round ratios, with its range, beside the link's TCP throughput.
Writes OUT_DIR/results.{md,json,png}.

Targets (issue 14): the Rust initiator at least aoe.ko's 4K IOPS and
sequential throughput.
"""
import json
import statistics
import sys
from pathlib import Path

from bench_common import finish, per_round_ratio
from bench_report import fio_figure, fio_job, rounds_in

INITIATORS = ["aoei", "aoe"]
LABELS = {"aoei": "aoei (Rust, storage personality)", "aoe": "aoe.ko"}
WORKLOADS = [
    ("seqread", "read", "MiB/s", "seq read 1M QD16 (MiB/s)"),
    ("seqwrite", "write", "MiB/s", "seq write 1M QD16 (MiB/s)"),
    ("randread", "read", "IOPS", "4K rand read QD32 (IOPS)"),
    ("randwrite", "write", "IOPS", "4K rand write QD32 (IOPS)"),
    ("qd1read", "read", "p50", "4K read QD1 p50 (µs)"),
]
# Workloads whose aoei / aoe.ko ratio has a target (at least 1.0).
TARGETS = ["seqread", "seqwrite", "randread", "randwrite"]


def main() -> int:
    raw, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    rounds = rounds_in(raw)
    if not rounds:
        print(f"no rounds in {raw}", file=sys.stderr)
        return 1
    per_round = {d: {w: [] for w, *_ in WORKLOADS} for d in INITIATORS}
    for d in INITIATORS:
        for w, direction, unit, _ in WORKLOADS:
            for r in rounds:
                f = raw / f"{d}-{w}.r{r}.json"
                if not f.exists():
                    print(f"missing {f}", file=sys.stderr)
                    return 1
                per_round[d][w].append(fio_figure(fio_job(f, direction), unit))
    figures = {d: {w: round(statistics.median(v), 1) for w, v in per_round[d].items()} for d in INITIATORS}
    links = [json.loads((raw / f"link-tcp.r{r}.json").read_text())["end"]["sum_received"]["bits_per_second"]
             / 8 / 2**20 for r in rounds]
    link_mib = round(statistics.median(links), 1)

    ratios, targets = {}, {}
    for w, *_ in WORKLOADS:
        median, spread = per_round_ratio(per_round["aoei"][w], per_round["aoe"][w])
        ratios[f"{w}_aoei_over_aoe"] = {"median": median, "range": spread}
        if w in TARGETS:
            targets[f"aoei / aoe.ko {w} >= 1.0"] = median is not None and median >= 1.0
    disk = (raw / "aoei-disk.txt").read_text().split() if (raw / "aoei-disk.txt").exists() else []
    results = {
        "rounds": len(rounds),
        "link_mib_per_s": link_mib,
        "link_mib_per_s_range": [round(min(links), 1), round(max(links), 1)],
        "aoei_target": {"sectors": int(disk[1]), "buffer_count": int(disk[2]), "sectors_per_command": int(disk[3])}
        if len(disk) >= 4 else {},
        "figures": figures,
        "ratios": ratios,
        "targets_met": targets,
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")

    lines = [
        f"# AoE initiators on one vblade ({len(rounds)} round(s), medians; link {link_mib} MiB/s iperf3 TCP, "
        f"{results['link_mib_per_s_range'][0]} - {results['link_mib_per_s_range'][1]})",
        "",
        "| initiator | " + " | ".join(label for *_, label in WORKLOADS) + " |",
        "|---|" + "---:|" * len(WORKLOADS),
    ]
    for d in INITIATORS:
        lines.append(f"| {LABELS[d]} | " + " | ".join(str(figures[d][w]) for w, *_ in WORKLOADS) + " |")
    lines += ["", "| ratio aoei / aoe.ko | median | range | target | met |", "|---|---:|---|---|---|"]
    for w, _, unit, label in WORKLOADS:
        r = ratios[f"{w}_aoei_over_aoe"]
        target = ">= 1.0" if w in TARGETS else ""
        met = "" if not target else ("yes" if targets[f"aoei / aoe.ko {w} >= 1.0"] else "no")
        rng = f"{r['range'][0]} - {r['range'][1]}" if r["range"] else ""
        lines.append(f"| {label} | {r['median']} | {rng} | {target} | {met} |")
    lines += ["", f"Link (iperf3 TCP on the same veth pair, same rounds): {link_mib} MiB/s. "
              "Latency is fio's total (submission and completion); lower is better."]
    md = "\n".join(lines) + "\n"
    rows = [(label, [figures[d][w] for d in INITIATORS]) for w, _, unit, label in WORKLOADS if unit != "p50"]
    return finish(out, md, f"AoE initiators on one vblade (medians; link {link_mib} MiB/s)",
                  [LABELS[d] for d in INITIATORS], rows)


if __name__ == "__main__":
    sys.exit(main())
