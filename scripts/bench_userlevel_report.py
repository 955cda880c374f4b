#!/usr/bin/env python3
"""Summarise the userlevel section of `make bench`: markdown, JSON and PNG.

    bench_userlevel_report.py RAW_DIR OUT_DIR

RAW_DIR holds, per round R and message size S: lib-{udp,tcp}-rtt-S.rR.json
(ulbench ping-pong), kernel-{udp,tcp}-rtt-S.rR.txt (sockperf ping-pong,
full round trip); per round, lib-{udp,tcp}-tput.rR.json (ulbench sink),
kernel-{udp,tcp}-tput.rR.json (iperf3) and *-cpu.rR.json (the guest's busy
jiffies over the stream). Every figure is the median of its rounds; each
ratio is the median of the per-round ratios, with its range. A run that
failed is reported as missing, and a target that needs it is not met.
"""
import json
import statistics
import sys
from pathlib import Path

from bench_common import finish, median_of, per_round_ratio, sizes_and_rounds, sockperf_rtt


def med(values: list) -> float | None:
    return median_of(values, 2)


def ratio(num: list, den: list):
    return per_round_ratio(num, den, 3)

KINDS = ["lib-udp", "lib-udp-bp", "kernel-udp", "lib-tcp", "lib-tcp-bp", "kernel-tcp"]
LABELS = {"lib-udp": "library UDP (bqi-net)", "lib-udp-bp": "library UDP, busy-polling (round trips only)",
          "kernel-udp": "kernel UDP (sockperf, iperf3)", "lib-tcp": "library TCP (bqi-net)",
          "lib-tcp-bp": "library TCP, busy-polling (round trips only)", "kernel-tcp": "kernel TCP (sockperf, iperf3)"}
# Kinds measured for round trips only.
RTT_ONLY = {"lib-udp-bp", "lib-tcp-bp"}
RTT_TARGET = 0.8


def load_json(f: Path):
    try:
        return json.loads(f.read_text())
    except (OSError, ValueError):
        return None


def rtt(raw: Path, kind: str, size: int, r: int):
    """Round trip p50/p99 in microseconds, or None."""
    if kind.startswith("kernel"):
        return sockperf_rtt(raw / f"{kind}-rtt-{size}.r{r}.txt")
    doc = load_json(raw / f"{kind}-rtt-{size}.r{r}.json")
    if not doc or doc.get("lost", 1) > doc.get("count", 0) // 10 or doc["rtt_us"]["p50"] <= 0:
        return None
    return {"p50": doc["rtt_us"]["p50"], "p99": doc["rtt_us"]["p99"]}


def tput(raw: Path, kind: str, r: int):
    """Received Mbit/s and gigabits moved, or None."""
    doc = load_json(raw / f"{kind}-tput.r{r}.json")
    if not doc:
        return None
    if kind.startswith("lib"):
        if not doc.get("mbit_s"):
            return None
        return {"mbit_s": doc["mbit_s"], "gbit": doc["bytes"] * 8 / 1e9}
    end = doc.get("end", {})
    if kind == "kernel-tcp":
        s = end.get("sum_received")
        if not s:
            return None
        return {"mbit_s": s["bits_per_second"] / 1e6, "gbit": s["bytes"] * 8 / 1e9}
    s = end.get("sum_received") or end.get("sum")
    if not s or "bits_per_second" not in s:
        return None
    kept = 1 - s.get("lost_percent", 0) / 100 if "sum_received" not in end else 1
    mbit = s["bits_per_second"] * kept / 1e6
    return {"mbit_s": mbit, "gbit": mbit * s.get("seconds", 0) / 1e3}


def cpu_per_gbit(raw: Path, kind: str, r: int, t):
    doc = load_json(raw / f"{kind}-cpu.r{r}.json")
    if not doc or not t or not t["gbit"]:
        return None
    return doc["busy_jiffies"] / doc.get("hz", 100) / t["gbit"]


def main() -> int:
    raw, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    sizes, rounds = sizes_and_rounds(raw)
    if not sizes or not rounds:
        print(f"no measurements in {raw}", file=sys.stderr)
        return 1
    per_round = {}
    for k in KINDS:
        tp = [tput(raw, k, r) for r in rounds]
        per_round[k] = {"rtt": {str(s): [rtt(raw, k, s, r) for r in rounds] for s in sizes}, "tput": tp,
                        "cpu_s_per_gbit": [cpu_per_gbit(raw, k, r, t) for r, t in zip(rounds, tp)]}
    results = {k: {"rtt_p50_us": {str(s): med([x and x["p50"] for x in per_round[k]["rtt"][str(s)]]) for s in sizes},
                   "rtt_p99_us": {str(s): med([x and x["p99"] for x in per_round[k]["rtt"][str(s)]]) for s in sizes},
                   "mbit_s": med([x and x["mbit_s"] for x in per_round[k]["tput"]]),
                   "cpu_s_per_gbit": med(per_round[k]["cpu_s_per_gbit"])} for k in KINDS}
    ratios, spread, targets, notes = {}, {}, {}, []
    first = sizes[0]
    for proto in ("udp", "tcp"):
        key = f"rtt{first}_{proto}_busy_lib_over_kernel"
        ratios[key], spread[key] = ratio(
            [x and x["p50"] for x in per_round[f"lib-{proto}-bp"]["rtt"][str(first)]],
            [x and x["p50"] for x in per_round[f"kernel-{proto}"]["rtt"][str(first)]])
        key = f"rtt{first}_{proto}_lib_over_kernel"
        ratios[key], spread[key] = ratio([x and x["p50"] for x in per_round[f"lib-{proto}"]["rtt"][str(first)]],
                                                   [x and x["p50"] for x in per_round[f"kernel-{proto}"]["rtt"][str(first)]])
        targets[f"{proto.upper()} {first} B round trip at most {RTT_TARGET}x the kernel's"] = (
            ratios[key] is not None and ratios[key] <= RTT_TARGET)
        key = f"tput_{proto}_lib_over_kernel"
        ratios[key], spread[key] = ratio([x and x["mbit_s"] for x in per_round[f"lib-{proto}"]["tput"]],
                                                   [x and x["mbit_s"] for x in per_round[f"kernel-{proto}"]["tput"]])
        key = f"cpu_per_gbit_{proto}_lib_over_kernel"
        ratios[key], spread[key] = ratio(per_round[f"lib-{proto}"]["cpu_s_per_gbit"],
                                                   per_round[f"kernel-{proto}"]["cpu_s_per_gbit"])
    targets["TCP throughput at least the kernel's"] = (ratios["tput_tcp_lib_over_kernel"] is not None
                                                        and ratios["tput_tcp_lib_over_kernel"] >= 1.0)
    for k in KINDS:
        if results[k]["mbit_s"] is None and k not in RTT_ONLY:
            notes.append(f"{LABELS[k]}: no throughput figure (the runs failed)")
    doc = {"rounds": len(rounds), "sizes": sizes, "results": results, "per_round": per_round, "ratios": ratios,
           "ratio_range": spread, "targets_met": targets, "notes": notes}
    (out / "results.json").write_text(json.dumps(doc, indent=2) + "\n")

    def cell(v, fmt="{:.1f}"):
        return "n/a" if v is None else fmt.format(v)

    lines = ["| kind | " + " | ".join(f"RTT p50 / p99 {s} B (µs)" for s in sizes)
             + " | stream Mbit/s | guest CPU-s per Gbit |", "|---|" + "---:|" * (len(sizes) + 2)]
    for k in KINDS:
        rr = [f"{cell(results[k]['rtt_p50_us'][str(s)])} / {cell(results[k]['rtt_p99_us'][str(s)])}" for s in sizes]
        lines.append(f"| {LABELS[k]} | " + " | ".join(rr) + f" | {cell(results[k]['mbit_s'])} | "
                     f"{cell(results[k]['cpu_s_per_gbit'], '{:.2f}')} |")
    lines += ["", f"Medians of {len(rounds)} interleaved rounds, one veth link (MTU 9000) between two namespaces, "
              "both ends of each test the same kind. Streams: TCP as fast as it goes, UDP 1472-byte datagrams, "
              "measured at the receiver; CPU is the whole guest's over the stream. Busy-polling: both ends spin on the endpoint's event queue "
              "(shared memory) for up to 500 µs before sleeping; the targets are judged on the default library.", "",
              "| ratio (median of rounds) | value | range over rounds | target | met |", "|---|---:|---:|---:|:---:|"]
    rows = [(f"library / kernel, UDP {first} B round trip p50", f"rtt{first}_udp_lib_over_kernel", f"<= {RTT_TARGET}",
             f"UDP {first} B round trip at most {RTT_TARGET}x the kernel's"),
            (f"library / kernel, TCP {first} B round trip p50", f"rtt{first}_tcp_lib_over_kernel", f"<= {RTT_TARGET}",
             f"TCP {first} B round trip at most {RTT_TARGET}x the kernel's"),
            (f"library busy-polling / kernel, UDP {first} B round trip p50", f"rtt{first}_udp_busy_lib_over_kernel", "", None),
            (f"library busy-polling / kernel, TCP {first} B round trip p50", f"rtt{first}_tcp_busy_lib_over_kernel", "", None),
            ("library / kernel, TCP throughput", "tput_tcp_lib_over_kernel", ">= 1.0", "TCP throughput at least the kernel's"),
            ("library / kernel, UDP throughput", "tput_udp_lib_over_kernel", "", None),
            ("library / kernel, CPU per Gbit, TCP", "cpu_per_gbit_tcp_lib_over_kernel", "", None),
            ("library / kernel, CPU per Gbit, UDP", "cpu_per_gbit_udp_lib_over_kernel", "", None)]
    for label, key, target, tkey in rows:
        rng = spread.get(key)
        met = "" if tkey is None else ("yes" if targets.get(tkey) else "no")
        lines.append(f"| {label} | {cell(ratios.get(key), '{}')} | {'n/a' if not rng else f'{rng[0]} - {rng[1]}'} | "
                     f"{target} | {met} |")
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    md = "\n".join(lines) + "\n"
    chart_rows = [(k, [results[k]["rtt_p50_us"][str(s)] or 0 for s in sizes]) for k in KINDS]
    return finish(out, md, "userlevel bench: round trip p50 (µs) by message size (medians of one run)",
                  [f"{s} B" for s in sizes], chart_rows)


if __name__ == "__main__":
    sys.exit(main())
