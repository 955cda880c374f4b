#!/usr/bin/env python3
"""Summarise a `make bench` run: markdown table, JSON and PNG bar chart.

    bench_report.py RAW_DIR OUT_DIR

RAW_DIR holds the guest's fio JSON files (NAME-WORKLOAD.rROUND.json), one
iperf3 link-tcp.rROUND.json per round, memory.json, what ebd-server's
process spent on each EBD workload (ebd-WORKLOAD.rROUND.cpu.json: CPU and
wall seconds; the server polls its socket for a while after each batch)
and, when present, EBD's queue-depth-1 workloads with the server not
polling (ebd-nopoll-WORKLOAD.rROUND.json), measured after the rounds. The devices were
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

DEVICES = ["ebd", "aoe", "nbd", "nvme"]
LABELS = {"ebd": "EBD", "aoe": "AoE", "nbd": "NBD", "nvme": "NVMe/TCP"}
# (name, fio direction, figure): throughput in MiB/s or IOPS, or 4K
# latency at queue depth 1 (median and p99, µs; fio's total latency,
# submission included).
WORKLOADS = [
    ("seqread", "read", "MiB/s"),
    ("seqwrite", "write", "MiB/s"),
    ("randread", "read", "IOPS"),
    ("randwrite", "write", "IOPS"),
    ("qd1read", "read", "p50"),
    ("qd1write", "write", "p50"),
    ("seqread2j", "read", "MiB/s"),
    ("randread2j", "read", "IOPS"),
    ("randwrite2j", "write", "IOPS"),
]
COLUMNS = [
    ("seqread", "seq read 1M QD16 (MiB/s)"),
    ("seqwrite", "seq write 1M QD16 (MiB/s)"),
    ("randread", "4K rand read QD32 (IOPS)"),
    ("randwrite", "4K rand write QD32 (IOPS)"),
    ("qd1read", "4K read QD1 p50 / p99 (µs)"),
    ("qd1write", "4K write QD1 p50 / p99 (µs)"),
    ("seqread2j", "seq read, 2 jobs (MiB/s)"),
    ("randread2j", "4K rand read, 2 jobs (IOPS)"),
    ("randwrite2j", "4K rand write, 2 jobs (IOPS)"),
]
# (key, label, numerator (device, workload), denominator (device, workload),
# target, "min" when the ratio must be at least the target, "max" when at
# most (latency)).
TARGETS = [
    ("seqread_ebd_over_nbd", "EBD / NBD seq read", ("ebd", "seqread"), ("nbd", "seqread"), 1.0, "min"),
    ("seqwrite_ebd_over_nbd", "EBD / NBD seq write", ("ebd", "seqwrite"), ("nbd", "seqwrite"), 1.0, "min"),
    ("randread_ebd_over_aoe", "EBD / AoE 4K read IOPS", ("ebd", "randread"), ("aoe", "randread"), 1.5, "min"),
    ("randwrite_ebd_over_aoe", "EBD / AoE 4K write IOPS", ("ebd", "randwrite"), ("aoe", "randwrite"), 1.5, "min"),
    ("randread_ebd_over_nvme", "EBD / NVMe/TCP 4K read IOPS", ("ebd", "randread"), ("nvme", "randread"), 1.0, "min"),
    ("randwrite_ebd_over_nvme", "EBD / NVMe/TCP 4K write IOPS", ("ebd", "randwrite"), ("nvme", "randwrite"), 1.0,
     "min"),
    ("seqread_ebd_over_nvme", "EBD / NVMe/TCP seq read", ("ebd", "seqread"), ("nvme", "seqread"), 0.9, "min"),
    ("seqwrite_ebd_over_nvme", "EBD / NVMe/TCP seq write", ("ebd", "seqwrite"), ("nvme", "seqwrite"), 0.9, "min"),
    ("qd1read_p50_ebd_over_nvme", "EBD / NVMe/TCP 4K read QD1 median latency", ("ebd", "qd1read"),
     ("nvme", "qd1read"), 1.0, "max"),
    ("randread_2j_over_1j_ebd", "EBD 4K read IOPS, two jobs / one", ("ebd", "randread2j"), ("ebd", "randread"), 1.5,
     "min"),
    ("randwrite_2j_over_1j_ebd", "EBD 4K write IOPS, two jobs / one", ("ebd", "randwrite2j"), ("ebd", "randwrite"),
     1.5, "min"),
]


# EBD's QD1 workloads measured again with ebd-server not polling: figures
# beside the target, not targets.
NOPOLL = [("qd1read", "read"), ("qd1write", "write")]


def fio_job(path: Path, direction: str) -> dict:
    """The one job's figures for DIRECTION in a fio JSON result."""
    return json.loads(path.read_text())["jobs"][0][direction]


def fio_figure(job: dict, unit: str) -> float:
    """A workload's figure: MiB/s, IOPS, or a percentile of the total
    latency (submission and completion) in µs ("p50", "p99")."""
    if unit == "MiB/s":
        return job["bw_bytes"] / 2**20
    if unit == "IOPS":
        return job["iops"]
    percentile = {"p50": "50.000000", "p99": "99.000000"}[unit]
    return job["lat_ns"]["percentile"][percentile] / 1000


def rounds_in(raw: Path) -> list[int]:
    return sorted(int(p.name.split(".r")[1].split(".")[0]) for p in raw.glob("link-tcp.r*.json"))


def describe_conditions(conditions: dict) -> str:
    """One line on the machine the run had: its guest CPU model, and
    whether the VM was held to fewer host CPUs on purpose."""
    cpu = conditions.get("qemu_cpu") or "not recorded"
    host = conditions.get("vm_host_cpus")
    held = f"the VM held to {host} host CPUs (slowed on purpose)" if host else "the VM not held below the host's CPUs"
    return f"Machine: guest CPU model `{cpu}`, {held}."


def main() -> int:
    raw, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    rounds = rounds_in(raw)
    if not rounds:
        print(f"no rounds in {raw}", file=sys.stderr)
        return 1
    per_round = {d: {w: [] for w, _, _ in WORKLOADS} for d in DEVICES}
    p99 = {d: {w: [] for w, _, u in WORKLOADS if u == "p50"} for d in DEVICES}
    for d in DEVICES:
        for w, direction, unit in WORKLOADS:
            for r in rounds:
                f = raw / f"{d}-{w}.r{r}.json"
                if not f.exists():
                    print(f"missing {f}", file=sys.stderr)
                    return 1
                job = fio_job(f, direction)
                per_round[d][w].append(fio_figure(job, unit))
                if unit == "p50":
                    p99[d][w].append(fio_figure(job, "p99"))
    results = {d: {w: round(statistics.median(v), 1) for w, v in per_round[d].items()} for d in DEVICES}
    latency_p99 = {d: {w: round(statistics.median(v), 1) for w, v in p99[d].items()} for d in DEVICES}
    links = [json.loads((raw / f"link-tcp.r{r}.json").read_text())["end"]["sum_received"]["bits_per_second"] / 8 / 2**20
             for r in rounds]
    link_mib = round(statistics.median(links), 1)
    memory = json.loads((raw / "memory.json").read_text())
    # Share of one vCPU the EBD server's process used during each workload.
    # and the share of all vCPUs left idle (what a second job could use).
    server_cpu, idle = {}, {}
    for w, _, _ in WORKLOADS:
        shares, idles = [], []
        for r in rounds:
            f = raw / f"ebd-{w}.r{r}.cpu.json"
            if f.exists():
                c = json.loads(f.read_text())
                if c["wall_s"] > 0:
                    shares.append(c["cpu_s"] / c["wall_s"])
                if "idle_share" in c:
                    idles.append(c["idle_share"])
        if shares:
            server_cpu[w] = round(statistics.median(shares), 2)
        if idles:
            idle[w] = round(statistics.median(idles), 2)
    nopoll = {}
    for w, direction in NOPOLL:
        files = [raw / f"ebd-nopoll-{w}.r{r}.json" for r in rounds]
        if all(f.exists() for f in files):
            jobs = [fio_job(f, direction) for f in files]
            nopoll[w] = {"p50": round(statistics.median(fio_figure(j, "p50") for j in jobs), 1),
                         "p99": round(statistics.median(fio_figure(j, "p99") for j in jobs), 1)}

    ratios, spread, targets, round_ratios = {}, {}, {}, {}
    for key, label, (nd, nw), (dd, dw), target, kind in TARGETS:
        if min(per_round[dd][dw]) <= 0:
            print(f"{dd} {dw}: an anchor figure is zero; no ratio", file=sys.stderr)
            return 1
        each = [n / a for n, a in zip(per_round[nd][nw], per_round[dd][dw])]
        round_ratios[key] = [round(x, 2) for x in each]
        ratios[key] = round(statistics.median(each), 2)
        spread[key] = [round(min(each), 2), round(max(each), 2)]
        targets[label] = ratios[key] >= target if kind == "min" else ratios[key] <= target
    ratios["seqread_ebd_over_link"] = round(results["ebd"]["seqread"] / link_mib, 2) if link_mib > 0 else None
    if "qd1read" in nopoll and results["nvme"]["qd1read"] > 0:
        ratios["qd1read_p50_ebd_not_polling_over_nvme"] = round(nopoll["qd1read"]["p50"] / results["nvme"]["qd1read"], 2)
    link_range = [round(min(links), 1), round(max(links), 1)]
    per_round["link_tcp_mib_s"] = [round(x, 1) for x in links]
    per_round["ratios"] = round_ratios
    conditions_file = raw / "conditions.json"
    conditions = json.loads(conditions_file.read_text()) if conditions_file.exists() else {}
    doc = {"conditions": conditions, "rounds": len(rounds), "results": results, "latency_p99_us": latency_p99, "per_round": per_round,
           "link_tcp_mib_s": link_mib, "link_tcp_mib_s_range": link_range, "ratios": ratios, "ratio_range": spread,
           "targets_met": targets, "memory": memory, "ebd_server_cpu_share": server_cpu, "ebd_idle_share": idle,
           "ebd_server_not_polling_latency_us": nopoll}
    (out / "results.json").write_text(json.dumps(doc, indent=2) + "\n")

    def cell(d: str, w: str) -> str:
        v = results[d][w]
        if w in latency_p99[d]:
            return f"{v} / {latency_p99[d][w]}"
        return f"{v:.0f}" if "rand" in w else f"{v}"

    lines = [
        "| device | " + " | ".join(c for _, c in COLUMNS) + " |",
        "|---|" + "---:|" * len(COLUMNS),
    ]
    for d in DEVICES:
        lines.append(f"| {LABELS[d]} | " + " | ".join(cell(d, w) for w, _ in COLUMNS) + " |")
    lines += [
        "",
        f"Medians of {len(rounds)} interleaved rounds. Link ceiling (iperf3 TCP, same veth, MTU 9000): "
        f"{link_mib} MiB/s. Two jobs: one per vCPU, each on its own half of the device.",
        "",
        describe_conditions(conditions),
        "",
        "| ratio (median of rounds) | value | range over rounds | link MiB/s (median, range) | target | met |",
        "|---|---:|---:|---:|---:|:---:|",
    ]
    link_cell = f"{link_mib} ({link_range[0]} - {link_range[1]})"
    for key, label, _, _, target, kind in TARGETS:
        lo, hi = spread[key]
        bound = ">=" if kind == "min" else "<="
        lines.append(f"| {label} | {ratios[key]} | {lo} - {hi} | {link_cell} | {bound} {target} | "
                     f"{'yes' if targets[label] else 'no'} |")
    lines += [
        "",
        "Each round's ratios beside the link measured at its start:",
        "",
        "| round | link MiB/s | " + " | ".join(t[1] for t in TARGETS) + " |",
        "|---:|---:|" + "---:|" * len(TARGETS),
    ]
    for i, r in enumerate(rounds):
        cells = " | ".join(str(round_ratios[t[0]][i]) for t in TARGETS)
        lines.append(f"| {r} | {per_round['link_tcp_mib_s'][i]} | {cells} |")
    def workload_table(caption: str, figures: dict) -> list[str]:
        """One row of FIGURES under a header of their workloads."""
        if not figures:
            return []
        return ["", caption, "", "| " + " | ".join(figures) + " |", "|" + "---:|" * len(figures),
                "| " + " | ".join(str(v) for v in figures.values()) + " |"]

    lines += workload_table("ebd-server's CPU during each EBD workload, as a share of one vCPU (it polls its socket "
                            "for a while after answering, instead of sleeping at once):", server_cpu)
    lines += workload_table("Share of both vCPUs idle during each EBD workload (a second job can only use what one "
                            "leaves idle: with an idle share i, two jobs can do at most 1 / (1 - i) times one job's "
                            "work):", idle)
    if nopoll:
        lines += [""] + [
            f"EBD with ebd-server not polling, {w} p50 / p99: {v['p50']} / {v['p99']} µs (medians of "
            f"{len(rounds)} runs after the rounds)." for w, v in nopoll.items()]
        if "qd1read_p50_ebd_not_polling_over_nvme" in ratios:
            lines.append(f"Its QD1 read median latency over NVMe/TCP's: "
                         f"{ratios['qd1read_p50_ebd_not_polling_over_nvme']}.")
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

    rows = [(LABELS[d].replace("/", "-"), [results[d]["seqread"], results[d]["seqwrite"],
                                          round(results[d]["randread"] / 100, 1),
                                          round(results[d]["randwrite"] / 100, 1), results[d]["qd1read"]])
            for d in DEVICES]
    title = (f"polynic bench (medians of one run): MiB/s for sequential, IOPS/100 for 4K random, µs for QD1; "
             f"link {link_mib} MiB/s")
    if not bar_chart(out, title, ["seq read MiB/s", "seq write MiB/s", "4K rand read IOPS/100",
                                  "4K rand write IOPS/100", "4K read QD1 p50 µs"], rows):
        return 1
    print(f"wrote {out / 'results.md'}, {out / 'results.json'}, {out / 'results.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
