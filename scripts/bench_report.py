#!/usr/bin/env python3
"""Summarise a `make bench` run: markdown table, JSON and PNG bar chart.

    bench_report.py RAW_DIR OUT_DIR

RAW_DIR holds the guest's fio JSON files (NAME-WORKLOAD.rROUND.json), one
iperf3 link-tcp.rROUND.json per round and memory.json. The devices were
measured in interleaved rounds of one VM run; each figure is the median of
its rounds, and each target ratio is the median of the per-round ratios
(device and anchor measured minutes apart), shown with its range and beside
the link's TCP throughput measured in the same rounds: the margins depend on
how fast the machine is, so a ratio is only read together with its link.
"""
import json
import statistics
import sys
from pathlib import Path

from bench_chart import bar_chart

DEVICES = ["ebd", "aoe", "nbd"]
WORKLOADS = [
    ("seqread", "read", "MiB/s"),
    ("seqwrite", "write", "MiB/s"),
    ("randread", "read", "IOPS"),
    ("randwrite", "write", "IOPS"),
]
# (key, label, workload, anchor, target)
TARGETS = [
    ("seqread_ebd_over_nbd", "EBD / NBD seq read", "seqread", "nbd", 1.0),
    ("seqwrite_ebd_over_nbd", "EBD / NBD seq write", "seqwrite", "nbd", 1.0),
    ("randread_ebd_over_aoe", "EBD / AoE 4K read IOPS", "randread", "aoe", 1.5),
    ("randwrite_ebd_over_aoe", "EBD / AoE 4K write IOPS", "randwrite", "aoe", 1.5),
]


def fio_figure(path: Path, direction: str, unit: str) -> float:
    job = json.loads(path.read_text())["jobs"][0][direction]
    return job["bw_bytes"] / 2**20 if unit == "MiB/s" else job["iops"]


def rounds_in(raw: Path) -> list[int]:
    return sorted(int(p.name.split(".r")[1].split(".")[0]) for p in raw.glob("link-tcp.r*.json"))


def main() -> int:
    raw, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    rounds = rounds_in(raw)
    if not rounds:
        print(f"no rounds in {raw}", file=sys.stderr)
        return 1
    per_round = {d: {w: [] for w, _, _ in WORKLOADS} for d in DEVICES}
    for d in DEVICES:
        for w, direction, unit in WORKLOADS:
            for r in rounds:
                f = raw / f"{d}-{w}.r{r}.json"
                if not f.exists():
                    print(f"missing {f}", file=sys.stderr)
                    return 1
                per_round[d][w].append(fio_figure(f, direction, unit))
    results = {d: {w: round(statistics.median(v), 1) for w, v in per_round[d].items()} for d in DEVICES}
    links = [json.loads((raw / f"link-tcp.r{r}.json").read_text())["end"]["sum_received"]["bits_per_second"] / 8 / 2**20
             for r in rounds]
    link_mib = round(statistics.median(links), 1)
    memory = json.loads((raw / "memory.json").read_text())

    ratios, spread, targets, round_ratios = {}, {}, {}, {}
    for key, label, w, anchor, target in TARGETS:
        if min(per_round[anchor][w]) <= 0:
            print(f"{anchor} {w}: an anchor figure is zero; no ratio", file=sys.stderr)
            return 1
        each = [e / a for e, a in zip(per_round["ebd"][w], per_round[anchor][w])]
        round_ratios[key] = [round(x, 2) for x in each]
        ratios[key] = round(statistics.median(each), 2)
        spread[key] = [round(min(each), 2), round(max(each), 2)]
        targets[label] = ratios[key] >= target
    ratios["seqread_ebd_over_link"] = round(results["ebd"]["seqread"] / link_mib, 2) if link_mib > 0 else None
    link_range = [round(min(links), 1), round(max(links), 1)]
    per_round["link_tcp_mib_s"] = [round(x, 1) for x in links]
    per_round["ratios"] = round_ratios
    doc = {"rounds": len(rounds), "results": results, "per_round": per_round, "link_tcp_mib_s": link_mib,
           "link_tcp_mib_s_range": link_range, "ratios": ratios, "ratio_range": spread, "targets_met": targets,
           "memory": memory}
    (out / "results.json").write_text(json.dumps(doc, indent=2) + "\n")

    lines = [
        "| device | seq read 1M QD16 (MiB/s) | seq write 1M QD16 (MiB/s) | 4K rand read QD32 (IOPS) | 4K rand write QD32 (IOPS) |",
        "|---|---:|---:|---:|---:|",
    ]
    for d in DEVICES:
        r = results[d]
        lines.append(f"| {d.upper()} | {r['seqread']} | {r['seqwrite']} | {r['randread']:.0f} | {r['randwrite']:.0f} |")
    lines += [
        "",
        f"Medians of {len(rounds)} interleaved rounds. Link ceiling (iperf3 TCP, same veth, MTU 9000): "
        f"{link_mib} MiB/s.",
        "",
        "| ratio (median of rounds) | value | range over rounds | link MiB/s (median, range) | target | met |",
        "|---|---:|---:|---:|---:|:---:|",
    ]
    link_cell = f"{link_mib} ({link_range[0]} - {link_range[1]})"
    for key, label, _, _, target in TARGETS:
        lo, hi = spread[key]
        lines.append(f"| {label} | {ratios[key]} | {lo} - {hi} | {link_cell} | >= {target} | "
                     f"{'yes' if targets[label] else 'no'} |")
    lines += [
        "",
        "Each round's ratios beside the link measured at its start:",
        "",
        "| round | link MiB/s | " + " | ".join(label for _, label, _, _, _ in TARGETS) + " |",
        "|---:|---:|" + "---:|" * len(TARGETS),
    ]
    for i, r in enumerate(rounds):
        cells = " | ".join(str(round_ratios[key][i]) for key, _, _, _, _ in TARGETS)
        lines.append(f"| {r} | {per_round['link_tcp_mib_s'][i]} | {cells} |")
    lines += [
        "",
        f"EBD's median sequential read is {ratios['seqread_ebd_over_link']} of the link's median TCP throughput.",
        "",
        f"Memory pinned per EBD disk (queue depth 64): {memory['ebd_pinned_bytes'] / 1024:.1f} KiB of personality state "
        f"while attached, plus at most {memory['ebd_window_bytes'] / 1024:.0f} KiB of frames in flight (the response window).",
    ]
    md = "\n".join(lines) + "\n"
    (out / "results.md").write_text(md)
    print(md)

    rows = [(d.upper(), [results[d]["seqread"], results[d]["seqwrite"], round(results[d]["randread"] / 100, 1),
                         round(results[d]["randwrite"] / 100, 1)]) for d in DEVICES]
    title = f"polynic bench (medians of one run): MiB/s for sequential, IOPS/100 for 4K random; link {link_mib} MiB/s"
    if not bar_chart(out, title, ["seq read MiB/s", "seq write MiB/s", "4K rand read IOPS/100",
                                  "4K rand write IOPS/100"], rows):
        return 1
    print(f"wrote {out / 'results.md'}, {out / 'results.json'}, {out / 'results.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
