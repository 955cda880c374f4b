#!/usr/bin/env python3
"""Summarise a `make bench` run: markdown table, JSON and PNG bar chart.

    bench_report.py RAW_DIR OUT_DIR

RAW_DIR holds the guest's fio JSON files (NAME-WORKLOAD.json), iperf3's
link-tcp.json and memory.json. Every figure is from that one run; the
targets are stated as ratios against the anchors measured in the same run.
"""
import json
import subprocess
import sys
from pathlib import Path

DEVICES = ["ebd", "aoe", "nbd"]
WORKLOADS = [
    ("seqread", "read", "MiB/s"),
    ("seqwrite", "write", "MiB/s"),
    ("randread", "read", "IOPS"),
    ("randwrite", "write", "IOPS"),
]


def fio_figure(path: Path, direction: str, unit: str) -> float:
    job = json.loads(path.read_text())["jobs"][0][direction]
    return job["bw_bytes"] / 2**20 if unit == "MiB/s" else job["iops"]


def main() -> int:
    raw, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    results = {d: {} for d in DEVICES}
    for d in DEVICES:
        for w, direction, unit in WORKLOADS:
            f = raw / f"{d}-{w}.json"
            if not f.exists():
                print(f"missing {f}", file=sys.stderr)
                return 1
            results[d][w] = round(fio_figure(f, direction, unit), 1)
    link = json.loads((raw / "link-tcp.json").read_text())
    link_mib = round(link["end"]["sum_received"]["bits_per_second"] / 8 / 2**20, 1)
    memory = json.loads((raw / "memory.json").read_text())

    e, a, n = results["ebd"], results["aoe"], results["nbd"]
    ratios = {
        "seqread_ebd_over_nbd": round(e["seqread"] / n["seqread"], 2),
        "seqwrite_ebd_over_nbd": round(e["seqwrite"] / n["seqwrite"], 2),
        "randread_ebd_over_aoe": round(e["randread"] / a["randread"], 2),
        "randwrite_ebd_over_aoe": round(e["randwrite"] / a["randwrite"], 2),
        "seqread_ebd_over_link": round(e["seqread"] / link_mib, 2),
    }
    targets = {
        "seqread: EBD >= NBD": ratios["seqread_ebd_over_nbd"] >= 1.0,
        "seqwrite: EBD >= NBD": ratios["seqwrite_ebd_over_nbd"] >= 1.0,
        "randread: EBD >= 1.5x AoE": ratios["randread_ebd_over_aoe"] >= 1.5,
        "randwrite: EBD >= 1.5x AoE": ratios["randwrite_ebd_over_aoe"] >= 1.5,
    }
    doc = {"results": results, "link_tcp_mib_s": link_mib, "ratios": ratios, "targets_met": targets,
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
        f"Link ceiling (iperf3 TCP, same veth, MTU 9000): {link_mib} MiB/s.",
        "",
        "| ratio (same run) | value | target | met |",
        "|---|---:|---:|:---:|",
        f"| EBD / NBD seq read | {ratios['seqread_ebd_over_nbd']} | >= 1.0 | {'yes' if targets['seqread: EBD >= NBD'] else 'no'} |",
        f"| EBD / NBD seq write | {ratios['seqwrite_ebd_over_nbd']} | >= 1.0 | {'yes' if targets['seqwrite: EBD >= NBD'] else 'no'} |",
        f"| EBD / AoE 4K read IOPS | {ratios['randread_ebd_over_aoe']} | >= 1.5 | {'yes' if targets['randread: EBD >= 1.5x AoE'] else 'no'} |",
        f"| EBD / AoE 4K write IOPS | {ratios['randwrite_ebd_over_aoe']} | >= 1.5 | {'yes' if targets['randwrite: EBD >= 1.5x AoE'] else 'no'} |",
        f"| EBD seq read / link | {ratios['seqread_ebd_over_link']} | | |",
        "",
        f"Memory pinned per EBD disk (queue depth 64): {memory['ebd_pinned_bytes'] / 1024:.1f} KiB of personality state "
        f"while attached, plus at most {memory['ebd_window_bytes'] / 1024:.0f} KiB of frames in flight (the response window).",
    ]
    md = "\n".join(lines) + "\n"
    (out / "results.md").write_text(md)
    print(md)

    data = out / "results.dat"
    with data.open("w") as f:
        f.write("device seqread seqwrite randread randwrite\n")
        for d in DEVICES:
            r = results[d]
            f.write(f"{d.upper()} {r['seqread']} {r['seqwrite']} {r['randread'] / 100:.1f} {r['randwrite'] / 100:.1f}\n")
    script = f"""
set terminal pngcairo size 900,500 noenhanced
set output '{out / 'results.png'}'
set title 'polynic bench (same run): MiB/s for sequential, IOPS/100 for 4K random; link {link_mib} MiB/s'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key top right
set yrange [0:*]
plot '{data}' using 2:xtic(1) title 'seq read MiB/s', '' using 3 title 'seq write MiB/s', \\
     '' using 4 title '4K rand read IOPS/100', '' using 5 title '4K rand write IOPS/100'
"""
    try:
        subprocess.run(["gnuplot"], input=script, text=True, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"PNG chart not drawn: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out / 'results.md'}, {out / 'results.json'}, {out / 'results.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
