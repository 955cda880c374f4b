#!/usr/bin/env python3
"""Summarise the bqi section of `make bench`: markdown table, JSON and PNG.

    bench_bqi_report.py RAW_DIR OUT_DIR

RAW_DIR holds, per round R and frame size S: for each linkbench transport T
(bqi, packet, xdp) T-rtt-S.rR.json (ping-pong) and T-tput-S.rR.json (the
sink of a flood); for the kernel's UDP sockets udp-rtt-S.rR.txt (sockperf
ping-pong, full round trip) and udp-tput-S.rR.json (udpflow sink). Every
figure is the median of its rounds; each target ratio is the median of the
per-round ratios, with its range. Throughput is counted in whole frames
(Ethernet header included) so that all transports are compared alike: the
frame rate times the frame size. A run that failed (no file, or a
transport that cannot carry the size) is reported as missing, and a target
that needs it is not met.
"""
import json
import statistics
import sys
from pathlib import Path

from bench_common import finish, median_of, per_round_ratio, sizes_and_rounds, sockperf_rtt


def med(values: list) -> float | None:
    return median_of(values, 1)

TRANSPORTS = ["bqi", "udp", "packet", "xdp"]
LABELS = {"bqi": "BQI endpoint", "udp": "kernel UDP (sockperf, udpflow)", "packet": "AF_PACKET TPACKET_V3",
          "xdp": "AF_XDP copy mode"}
ANCHORS = ["udp", "packet", "xdp"]
DEMUX_TARGET_NS = 100


def rtt(raw: Path, t: str, size: int, r: int) -> dict | None:
    """Round trip p50/p99 in microseconds, or None if the run failed."""
    if t == "udp":
        return sockperf_rtt(raw / f"udp-rtt-{size}.r{r}.txt")
    f = raw / f"{t}-rtt-{size}.r{r}.json"
    try:
        doc = json.loads(f.read_text())
    except (OSError, ValueError):
        return None
    if doc.get("lost", 1) > doc.get("count", 0) // 10 or doc["rtt_us"]["p50"] <= 0:
        return None
    return {"p50": doc["rtt_us"]["p50"], "p99": doc["rtt_us"]["p99"]}


def tput(raw: Path, t: str, size: int, r: int) -> dict | None:
    """Frames/s and frame Mbit/s at the receiver, or None."""
    f = raw / f"{t}-tput-{size}.r{r}.json"
    try:
        doc = json.loads(f.read_text())
    except (OSError, ValueError):
        return None
    pps = doc.get("packets_s") if t == "udp" else doc.get("pps")
    if not pps:
        return None
    out = {"pps": pps, "mbit_s": pps * size * 8 / 1e6}
    counters = doc.get("counters", {})
    if counters.get("device.demux.samples"):
        # Each timed interval includes one clock reading; the empty interval
        # measured beside it says how much that was.
        clock = counters.get("device.demux.clock_ns", 0)
        out["demux_ns"] = (counters["device.demux.ns"] - clock) / counters["device.demux.samples"]
        out["clock_ns"] = clock / counters["device.demux.samples"]
    return out


def main() -> int:
    raw, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    sizes, rounds = sizes_and_rounds(raw)
    if not sizes or not rounds:
        print(f"no measurements in {raw}", file=sys.stderr)
        return 1
    per_round = {t: {str(s): {"rtt": [rtt(raw, t, s, r) for r in rounds], "tput": [tput(raw, t, s, r) for r in rounds]}
                     for s in sizes} for t in TRANSPORTS}
    results = {}
    for t in TRANSPORTS:
        results[t] = {}
        for s in sizes:
            runs = per_round[t][str(s)]
            results[t][str(s)] = {
                "rtt_p50_us": med([x and x["p50"] for x in runs["rtt"]]),
                "rtt_p99_us": med([x and x["p99"] for x in runs["rtt"]]),
                "mbit_s": med([x and x["mbit_s"] for x in runs["tput"]]),
                "pps": med([x and x["pps"] for x in runs["tput"]]),
            }

    ratios, spread, targets, notes = {}, {}, {}, []
    # Round trip at 64 B: BQI against the best anchor of each round.
    if 64 in sizes:
        bqi_rtt = [x and x["p50"] for x in per_round["bqi"]["64"]["rtt"]]
        best = []
        for i in range(len(rounds)):
            anchors = [per_round[a]["64"]["rtt"][i] for a in ANCHORS]
            anchors = [a["p50"] for a in anchors if a]
            best.append(min(anchors) if anchors else None)
        ratios["rtt64_bqi_over_best"], spread["rtt64_bqi_over_best"] = per_round_ratio(bqi_rtt, best)
        v = ratios["rtt64_bqi_over_best"]
        targets["64 B round trip at most the best anchor's"] = v is not None and v <= 1.0
    for s in (1500, 9000):
        if s not in sizes:
            continue
        key = f"tput{s}_bqi_over_xdp"
        b = [x and x["pps"] for x in per_round["bqi"][str(s)]["tput"]]
        x = [y and y["pps"] for y in per_round["xdp"][str(s)]["tput"]]
        ratios[key], spread[key] = per_round_ratio(b, x)
        if ratios[key] is None:
            notes.append(f"no ratio at {s} B: AF_XDP copy mode (or BQI) has no figure at that size")
        targets[f"{s} B throughput at least AF_XDP copy mode's"] = ratios[key] is not None and ratios[key] >= 1.0
    demux = [y["demux_ns"] for s in sizes for y in per_round["bqi"][str(s)]["tput"] if y and "demux_ns" in y]
    demux_ns = round(statistics.median(demux), 1) if demux else None
    clock = [y["clock_ns"] for s in sizes for y in per_round["bqi"][str(s)]["tput"] if y and "clock_ns" in y]
    clock_ns = round(statistics.median(clock), 1) if clock else None
    targets[f"demultiplexing under {DEMUX_TARGET_NS} ns per frame"] = demux_ns is not None and demux_ns < DEMUX_TARGET_NS
    doc = {"rounds": len(rounds), "sizes": sizes, "results": results, "per_round": per_round, "ratios": ratios,
           "ratio_range": spread, "demux_ns_per_frame": demux_ns, "clock_read_ns": clock_ns, "targets_met": targets, "notes": notes}
    (out / "results.json").write_text(json.dumps(doc, indent=2) + "\n")

    def cell(v, fmt="{:.1f}"):
        return "n/a" if v is None else fmt.format(v)

    lines = ["| transport | " + " | ".join(f"RTT p50 / p99 {s} B (µs)" for s in sizes) + " | "
             + " | ".join(f"{s} B Mbit/s (kframes/s)" for s in sizes) + " |",
             "|---|" + "---:|" * (2 * len(sizes))]
    for t in TRANSPORTS:
        rr = [f"{cell(results[t][str(s)]['rtt_p50_us'])} / {cell(results[t][str(s)]['rtt_p99_us'])}" for s in sizes]
        tt = [f"{cell(results[t][str(s)]['mbit_s'])} ({cell(results[t][str(s)]['pps'] and results[t][str(s)]['pps'] / 1000)})"
              for s in sizes]
        lines.append(f"| {LABELS[t]} | " + " | ".join(rr + tt) + " |")
    lines += ["", f"Medians of {len(rounds)} interleaved rounds, one veth link (MTU 9000) between two namespaces. "
              "Throughput is counted in frames received, Ethernet header included.", "",
              "| ratio (median of rounds) | value | range over rounds | target | met |", "|---|---:|---:|---:|:---:|"]
    rows = [("BQI / best anchor, 64 B round trip p50", "rtt64_bqi_over_best", "<= 1.0",
             "64 B round trip at most the best anchor's")]
    rows += [(f"BQI / AF_XDP copy mode, {s} B throughput", f"tput{s}_bqi_over_xdp", ">= 1.0",
              f"{s} B throughput at least AF_XDP copy mode's") for s in (1500, 9000) if s in sizes]
    for label, key, target, tkey in rows:
        rng = spread.get(key)
        lines.append(f"| {label} | {cell(ratios.get(key), '{}')} | {'n/a' if not rng else f'{rng[0]} - {rng[1]}'} | "
                     f"{target} | {'yes' if targets.get(tkey) else 'no'} |")
    lines.append(f"| demultiplexing per frame (ns, one frame in 64 timed, less a clock reading of {cell(clock_ns)} ns) | "
                 f"{cell(demux_ns)} | | < {DEMUX_TARGET_NS} | "
                 f"{'yes' if targets[f'demultiplexing under {DEMUX_TARGET_NS} ns per frame'] else 'no'} |")
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    md = "\n".join(lines) + "\n"
    chart_rows = [(t, [results[t][str(s)]["mbit_s"] or 0 for s in sizes]) for t in TRANSPORTS]
    return finish(out, md, "bqi bench: frame Mbit/s by transport and size (medians of one run)",
                  [f"{s} B" for s in sizes], chart_rows)


if __name__ == "__main__":
    sys.exit(main())
