#!/usr/bin/env python3
"""Summarise the pnic section of a `make bench` run.

    bench_pnic_report.py RAW_DIR OUT_DIR

RAW_DIR holds what tests/guest/bench-pnic.sh wrote: per link (veth,
pnic-nobus, pnic-bus), test (tcp, udp1470, udp8972) and round, iperf3's JSON
and a CPU record. Each figure is the median of its rounds; each ratio is the
median of the per-round ratios (both sides measured in the same round), with
its range. Writes OUT_DIR/results.{md,json,png}.

Targets (issue 9): pnic with no bus at least 0.5x veth; pnic on the default
bus within 10% of the bus's modelled capacity for large frames (UDP 8972).
"""
import json
import statistics
import sys
from pathlib import Path

from bench_chart import bar_chart

LINKS = ["veth", "pnic-nobus", "pnic-bus"]
TESTS = [("tcp", 0), ("udp1470", 1470), ("udp8972", 8972)]
# Ethernet + IPv4 + UDP headers around a datagram.
UDP_OVERHEAD = 14 + 20 + 8


def received_bps(doc: dict) -> float:
    end = doc["end"]
    if "sum_received" in end:
        return end["sum_received"]["bits_per_second"]
    s = end["sum"]  # UDP on older iperf3: sender rate less the loss
    return s["bits_per_second"] * (1 - s.get("lost_percent", 0) / 100)


def bus_capacity_bps(payload: int, bandwidth: float, arbitration_ns: float, scale: float) -> float:
    """Payload bits per second the bus carries when every frame crosses it
    twice (host to NIC a, NIC b to host: both NICs on the one bus)."""
    frame = payload + UDP_OVERHEAD
    dur = scale * (arbitration_ns * 1e-9 + frame / bandwidth)
    return payload * 8 / (2 * dur)


def ratio_stats(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3)}


def main() -> int:
    raw, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    rounds = sorted({int(p.name.split(".r")[1].split(".")[0]) for p in raw.glob("veth-tcp.r*.json")
                     if not p.name.endswith(".cpu.json")})
    if not rounds:
        print(f"no rounds in {raw}", file=sys.stderr)
        return 1
    bandwidth, arbitration, _pio = (float(x) for x in (raw / "bus-params.txt").read_text().split())
    scale = float((raw / "time-scale.txt").read_text().strip())

    per = {(l, t): [] for l in LINKS for t, _ in TESTS}
    cpu = {(l, t): [] for l in LINKS for t, _ in TESTS}
    engine = {(l, t): [] for l in LINKS for t, _ in TESTS}
    bus_util = {t: [] for t, _ in TESTS}
    for l in LINKS:
        for t, _ in TESTS:
            for r in rounds:
                text = (raw / f"{l}-{t}.r{r}.json").read_text()
                # iperf3 may print a warning before its JSON (older runs kept stderr there).
                doc = json.loads(text[text.index("{"):])
                c = json.loads((raw / f"{l}-{t}.r{r}.cpu.json").read_text())
                bps = received_bps(doc)
                per[(l, t)].append(bps)
                gbit = bps * c["seconds"] / 1e9
                # CPU-seconds of the whole guest per gigabit received, and
                # the time pnic's DMA engine passes took (wall time: it
                # includes their sleeps until the bus is free).
                busy_s = c["busy_jiffies"] / max(c["total_jiffies"], 1) * c["cpus"] * c["seconds"]
                cpu[(l, t)].append(busy_s / gbit if gbit else float("inf"))
                engine[(l, t)].append(c["engine_ns"] / 1e9 / gbit if gbit else float("inf"))
                if l == "pnic-bus":
                    bus_util[t].append(c["bus_busy_ns"] / 1e9 / c["seconds"])

    # Perturbation: copy MB/s alone ("idle") and during each link's
    # fixed-rate stream, per round.
    copy = {l: [] for l in ["idle", *LINKS]}
    stream = {l: [] for l in LINKS}
    for r in rounds:
        for l in copy:
            f = raw / f"perturb-{l}.r{r}.txt"
            if f.exists():
                copy[l].append(float(f.read_text()))
            j = raw / f"perturb-{l}.r{r}.json"
            if l in stream and j.exists():
                text = j.read_text()
                stream[l].append(received_bps(json.loads(text[text.index("{"):])))

    mbps = {k: round(statistics.median(v) / 1e6, 1) for k, v in per.items()}
    ratios, targets = {}, {}
    for t, payload in TESTS:
        ratios[f"nobus_over_veth_{t}"] = ratio_stats(
            [a / b for a, b in zip(per[("pnic-nobus", t)], per[("veth", t)])])
        if payload:
            cap = bus_capacity_bps(payload, bandwidth, arbitration, scale)
            ratios[f"bus_over_capacity_{t}"] = ratio_stats([a / cap for a in per[("pnic-bus", t)]])
            ratios[f"bus_over_capacity_{t}"]["capacity_mbps"] = round(cap / 1e6, 1)
    perturbation = {}
    if all(len(copy[l]) == len(rounds) for l in copy):
        for l in LINKS:
            ratios[f"copy_during_{l}_over_idle"] = ratio_stats([a / b for a, b in zip(copy[l], copy["idle"])])
        for l in ("pnic-nobus", "pnic-bus"):
            ratios[f"copy_during_{l}_over_veth"] = ratio_stats([a / b for a, b in zip(copy[l], copy["veth"])])
        perturbation = {
            "stream": (raw / "perturb-rate.txt").read_text().strip() + "bit/s UDP 1470",
            "copy_mb_per_s": {l: round(statistics.median(v), 1) for l, v in copy.items()},
            "stream_mbit_per_s": {l: round(statistics.median(v) / 1e6, 1) for l, v in stream.items() if v},
        }
    targets["pnic with no bus >= 0.5x veth (TCP)"] = ratios["nobus_over_veth_tcp"]["median"] >= 0.5
    targets["pnic on the bus within 10% of its capacity (UDP 8972)"] = \
        abs(1 - ratios["bus_over_capacity_udp8972"]["median"]) <= 0.10

    results = {
        "rounds": len(rounds),
        "time_scale": scale,
        "bus": {"bandwidth_bps": bandwidth, "arbitration_ns": arbitration},
        "mbit_per_s": {f"{l}/{t}": mbps[(l, t)] for l, t in per},
        "guest_cpu_seconds_per_gbit": {f"{l}/{t}": round(statistics.median(v), 3) for (l, t), v in cpu.items()},
        "engine_pass_seconds_per_gbit": {f"{l}/{t}": round(statistics.median(v), 3)
                                        for (l, t), v in engine.items() if l != "veth"},
        "bus_utilisation": {t: round(statistics.median(v), 3) for t, v in bus_util.items() if v},
        "perturbation": perturbation,
        "ratios": ratios,
        "targets_met": targets,
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")

    lines = [
        f"# pnic benchmark ({len(rounds)} round(s), medians; time_scale {scale:g}; "
        f"bus {bandwidth / 1e6:.1f} MB/s, {arbitration:g} ns per transaction)",
        "",
        "| link | test | Mbit/s | guest CPU-s per Gbit | engine pass s per Gbit |",
        "|---|---|---:|---:|---:|",
    ]
    for l in LINKS:
        for t, _ in TESTS:
            eng = results["engine_pass_seconds_per_gbit"].get(f"{l}/{t}", "")
            lines.append(f"| {l} | {t} | {mbps[(l, t)]} | {results['guest_cpu_seconds_per_gbit'][f'{l}/{t}']} | {eng} |")
    lines += ["", "| ratio | median | range | target | met |", "|---|---:|---|---|---|"]
    for key, r in ratios.items():
        target = ">= 0.5" if key == "nobus_over_veth_tcp" else ("0.9 - 1.1" if key == "bus_over_capacity_udp8972" else "")
        met = "" if not target else ("yes" if (r["median"] >= 0.5 if key.startswith("nobus") else abs(1 - r["median"]) <= 0.1) else "no")
        extra = f" (capacity {r['capacity_mbps']} Mbit/s)" if "capacity_mbps" in r else ""
        lines.append(f"| {key}{extra} | {r['median']} | {r['min']} - {r['max']} | {target} | {met} |")
    lines += ["", "Engine pass time is wall time and includes the engines' sleeps until the bus is free; "
              "the guest's CPU time is the cost of the emulation and the stack together.",
              "", "Bus utilisation (busy time over elapsed, both NICs): " +
              ", ".join(f"{t} {v}" for t, v in results["bus_utilisation"].items())]
    if perturbation:
        lines += ["", f"Perturbation (seed 001 §IV): host memory-copy MB/s alone and during a "
                  f"{perturbation['stream']} stream over each link (stream received, Mbit/s): " +
                  ", ".join(f"{l} {v}" + (f" ({perturbation['stream_mbit_per_s'][l]})"
                                          if l in perturbation["stream_mbit_per_s"] else "")
                            for l, v in perturbation["copy_mb_per_s"].items())]
    md = "\n".join(lines) + "\n"
    (out / "results.md").write_text(md)
    print(md)

    rows = [(t, [mbps[(l, t)] for l in LINKS]) for t, _ in TESTS]
    if not bar_chart(out, f"pnic bench (medians): Mbit/s received; time_scale {scale:g}",
                     ["veth", "pnic, no bus", "pnic, PCI bus"], rows):
        return 1
    print(f"wrote {out / 'results.md'}, {out / 'results.json'}, {out / 'results.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
