#!/usr/bin/env python3
"""Summarise the fwd section of a `make bench` run.

    bench_fwd_report.py RAW_DIR OUT_DIR

RAW_DIR holds what tests/guest/bench-fwd.sh wrote: RAW_DIR/CONFIG/SOURCES/
SIZE/rROUND/ with the senders' and sinks' JSON (udpflow), the guest's CPU
jiffies, the router bus's counters, the module's counters and the pnic
pairs' counters. Each figure is the median of its rounds; each ratio is
the median of the per-round ratios (both sides measured in the same round),
with its range. Writes OUT_DIR/results.{md,json,png}.

Targets (issue 10, seed 000 §6):
- header-copy at least 1.45x the module's conventional path at 8 KiB with
  2 and with 3 sources, and in-place between the two;
- bus bytes per forwarded packet within 5% of one packet plus two 34-byte
  headers (header-copy) and of two packets (conventional), at 8 KiB;
- the module's conventional path at least 0.9x ip_forward over the same
  NICs (geometric mean over every source count and size).
"""
import json
import math
import statistics
import sys
from pathlib import Path

from bench_chart import line_panels

CONFIGS = ["ipfwd-pnic", "conventional", "in-place", "header-copy", "ipfwd-veth"]
LABELS = {
    "ipfwd-pnic": "ip_forward, pnic",
    "conventional": "fwd conventional",
    "in-place": "fwd IN-PLACE",
    "header-copy": "fwd HEADER-COPY",
    "ipfwd-veth": "ip_forward, veth (no bus)",
}
# The link header in front of every IP packet on the bus.
ETH = 14
# What header-copy moves across the bus twice: Ethernet + fixed IPv4 header.
HEADER_COPY = 34
BUS_KINDS = ["h2d", "d2h", "peer", "pio"]
# Figures of seed 000 §6 (two and three sources, peak Mbit/s; CPU load with
# one source).
PAPER = {
    "mbit_s_2_sources": {"conventional": 335, "in-place": 419, "header-copy": 441},
    "mbit_s_3_sources": {"conventional": 335, "in-place": 472, "header-copy": 482},
    "cpu_load_1_source": {"conventional": 0.37, "in-place": 0.65, "header-copy": 0.56},
    "packets_s_under_1k": 12000,
}


def kv(path: Path) -> dict[str, int]:
    """`name value` lines."""
    out = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if value.strip().lstrip("-").isdigit():
                out[name] = int(value)
    return out


def point(d: Path, size: int) -> dict:
    """The figures of one measurement."""
    sinks = [json.loads(p.read_text()) for p in sorted(d.glob("sink*.json"))]
    sends = [json.loads(p.read_text()) for p in sorted(d.glob("send*.json"))]
    cpu = json.loads((d / "cpu.json").read_text())
    bus = kv(d / "bus.txt")
    # Several flows: datagrams over the span from the first flow's first to
    # the last flow's last, so that flows that did not run at the same time
    # are not added up as if they had (a sum of per-flow rates would be).
    starts = [s.get("first_unix_s", 0.0) for s in sinks]
    span = 0.0
    if sinks and all(starts):
        span = max(t + s["seconds"] for t, s in zip(starts, sinks)) - min(starts)
        pps = sum(max(s["received"] - 1, 0) for s in sinks) / span if span > 0 else 0.0
    else:
        pps = sum(s["packets_s"] for s in sinks)
    # Bus utilisation over the time traffic flowed (the counters' own
    # window also holds the senders' start-up, when the bus is idle); runs
    # without the sinks' start times fall back to the counters' window, or
    # to the senders' time.
    seconds = span or cpu.get("bus_window_s") or max((s["seconds"] for s in sends), default=0.0)
    received = sum(s["received"] for s in sinks)
    bus_bytes = {k: bus.get(f"{k}.bytes", 0) for k in BUS_KINDS}
    bus_busy = sum(bus.get(f"{k}.busy_ns", 0) for k in BUS_KINDS)
    fwd = {}
    for f in d.glob("fwd-*.txt"):
        for name, value in kv(f).items():
            fwd[name] = fwd.get(name, 0) + value
    # Frames the router's ingress NICs lost: memory full when they came off
    # the wire (missed), or no room to hand them to the host (dropped).
    router_rx_dropped = 0
    for before in d.glob("pair-s*.before.txt"):
        after = before.with_name(before.name.replace(".before", ".after"))
        a, b = kv(after), kv(before)
        router_rx_dropped += sum(a.get(k, 0) - b.get(k, 0) for k in ("b.rx_dropped", "b.rx_missed"))
    total = sum(bus_bytes.values())
    return {
        "mbit_s": pps * size * 8 / 1e6,
        "packets_s": pps,
        "offered_mbit_s": sum(s["packets_s"] for s in sends) * size * 8 / 1e6,
        "received": received,
        "lost": sum(s["lost"] for s in sinks),
        "corrupt": sum(s["corrupt"] for s in sinks),
        "duplicates": sum(s["duplicates"] for s in sinks),
        "reordered": sum(s["reordered"] for s in sinks),
        "foreign": sum(s["foreign"] for s in sinks),
        "cpu_load": cpu["busy_jiffies"] / max(cpu["total_jiffies"], 1),
        "softirq_load": cpu["softirq_jiffies"] / max(cpu["total_jiffies"], 1),
        "bus_bytes_per_packet": total / received if received else 0.0,
        "bus_bytes_per_packet_by_kind": {k: v / received if received else 0.0 for k, v in bus_bytes.items()},
        "bus_utilisation": bus_busy / 1e9 / seconds if seconds else 0.0,
        "router_rx_dropped": router_rx_dropped,
        "fwd_dropped": {k: v for k, v in fwd.items() if k.startswith("dropped.") and v},
        "fwd_to_stack": sum(v for k, v in fwd.items() if k.startswith("to_stack.")),
        "fwd_held": fwd.get("held", 0),
    }


def stats(values: list[float], digits: int = 3) -> dict:
    return {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits)}


def main() -> int:
    raw, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    configs = [c for c in CONFIGS if (raw / c).is_dir()]
    if not configs:
        print(f"no measurements in {raw}", file=sys.stderr)
        return 1
    sources = sorted({int(p.name) for c in configs for p in (raw / c).iterdir()})
    sizes = sorted({int(p.name) for c in configs for n in sources for p in (raw / c / str(n)).iterdir()})
    rounds = sorted({int(p.name[1:]) for p in (raw / configs[0] / str(sources[0]) / str(sizes[0])).iterdir()})
    scale = float((raw / "time-scale.txt").read_text())
    bandwidth, arbitration, pio = (float(x) for x in (raw / "bus-params.txt").read_text().split())

    # per[(config, sources, size)] = one dict per round
    per = {(c, n, s): [point(raw / c / str(n) / str(s) / f"r{r}", s) for r in rounds]
           for c in configs for n in sources for s in sizes}

    def med(c, n, s, key):
        return statistics.median(p[key] for p in per[(c, n, s)])

    def ratio(a, b, n, s, key="mbit_s"):
        return [x[key] / y[key] if y[key] else 0.0 for x, y in zip(per[(a, n, s)], per[(b, n, s)])]

    figures = {}
    for (c, n, s), ps in per.items():
        f = figures.setdefault(c, {}).setdefault(str(n), {})
        f[str(s)] = {
            "mbit_s": round(med(c, n, s, "mbit_s"), 1),
            "packets_s": round(med(c, n, s, "packets_s")),
            "offered_mbit_s": round(med(c, n, s, "offered_mbit_s"), 1),
            "cpu_load": round(med(c, n, s, "cpu_load"), 3),
            "softirq_load": round(med(c, n, s, "softirq_load"), 3),
            "bus_bytes_per_packet": round(med(c, n, s, "bus_bytes_per_packet"), 1),
            "bus_bytes_per_packet_by_kind": {k: round(statistics.median(p["bus_bytes_per_packet_by_kind"][k] for p in ps), 1)
                                             for k in BUS_KINDS},
            "bus_utilisation": round(med(c, n, s, "bus_utilisation"), 3),
            "lost": sum(p["lost"] for p in ps),
            "corrupt": sum(p["corrupt"] for p in ps),
            "duplicates": sum(p["duplicates"] for p in ps),
            "reordered": sum(p["reordered"] for p in ps),
            "router_rx_dropped": sum(p["router_rx_dropped"] for p in ps),
            "fwd_dropped": {k: sum(p["fwd_dropped"].get(k, 0) for p in ps)
                            for k in sorted({k for p in ps for k in p["fwd_dropped"]})},
            "fwd_to_stack": sum(p["fwd_to_stack"] for p in ps),
            "fwd_held": sum(p["fwd_held"] for p in ps),
        }

    ratios, targets = {}, {}
    big = max(sizes)
    have = set(configs)
    if {"header-copy", "conventional", "in-place"} <= have:
        for n in [n for n in sources if n >= 2]:
            hc = ratios[f"header-copy_over_conventional_{n}src_{big}B"] = stats(ratio("header-copy", "conventional", n, big))
            ip = ratios[f"in-place_over_conventional_{n}src_{big}B"] = stats(ratio("in-place", "conventional", n, big))
            iph = ratios[f"in-place_over_header-copy_{n}src_{big}B"] = stats(ratio("in-place", "header-copy", n, big))
            targets[f"header-copy >= 1.45x conventional, {n} sources, {big} B"] = hc["median"] >= 1.45
            targets[f"in-place between conventional and header-copy, {n} sources, {big} B"] = \
                ip["median"] >= 1.0 and iph["median"] <= 1.0
    frame = big + ETH
    for c, expect, what in [("header-copy", frame + 2 * HEADER_COPY, "one packet and two headers"),
                            ("conventional", 2 * frame, "two packets")]:
        if c in have:
            n = max(sources)
            values = [p["bus_bytes_per_packet"] / expect for p in per[(c, n, big)]]
            r = ratios[f"bus_bytes_per_packet_{c}_over_{what.replace(' ', '_')}_{big}B"] = stats(values)
            r["expected_bytes"] = expect
            targets[f"{c}: bus bytes per packet within 5% of {what} ({expect} B), {big} B"] = abs(1 - r["median"]) <= 0.05
    if {"conventional", "ipfwd-pnic"} <= have:
        points = {f"{n}src_{s}B": statistics.median(ratio("conventional", "ipfwd-pnic", n, s)) for n in sources for s in sizes}
        geo = math.exp(statistics.fmean(math.log(max(v, 1e-9)) for v in points.values()))
        ratios["conventional_over_ipfwd-pnic"] = {"geometric_mean": round(geo, 3),
                                                   "min": round(min(points.values()), 3),
                                                   "max": round(max(points.values()), 3),
                                                   "points": {k: round(v, 3) for k, v in points.items()}}
        targets["fwd conventional >= 0.9x ip_forward over pnic (geometric mean)"] = geo >= 0.9
    if {"ipfwd-veth", "ipfwd-pnic"} <= have:
        n = max(sources)
        ratios[f"ipfwd-pnic_over_ipfwd-veth_{n}src_{big}B"] = stats(ratio("ipfwd-pnic", "ipfwd-veth", n, big))
    integrity = {k: sum(f[k] for c in figures for nn in figures[c].values() for f in nn.values())
                 for k in ("corrupt", "duplicates", "reordered")}

    results = {
        "rounds": len(rounds),
        "seconds_per_point": float((raw / "runtime.txt").read_text()),
        "time_scale": scale,
        "bus": {"bandwidth_bps": bandwidth, "arbitration_ns": arbitration, "pio_read_ns": pio,
                "modelled_bytes_per_s": bandwidth / scale},
        "figures": figures,
        "integrity": integrity,
        "ratios": ratios,
        "targets_met": targets,
        "paper": PAPER,
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")

    lines = [
        f"# fwd benchmark ({len(rounds)} round(s) of {results['seconds_per_point']:g} s per point, medians; "
        f"time_scale {scale:g}: the router's bus carries {bandwidth / scale / 1e6:.1f} MB/s, "
        f"{arbitration * scale:g} ns per transaction, {pio * scale:g} ns more per PIO read)",
        "",
        "Forwarded Mbit/s (IP packets received whole by the sinks) by packet size:",
        "",
        "| config | sources | " + " | ".join(f"{s} B" for s in sizes) + " |",
        "|---|---:|" + "---:|" * len(sizes),
    ]
    for c in configs:
        for n in sources:
            lines.append(f"| {LABELS[c]} | {n} | " + " | ".join(str(figures[c][str(n)][str(s)]["mbit_s"]) for s in sizes) + " |")
    lines += ["", "Packets per second forwarded:", "",
              "| config | sources | " + " | ".join(f"{s} B" for s in sizes) + " |",
              "|---|---:|" + "---:|" * len(sizes)]
    for c in configs:
        for n in sources:
            lines.append(f"| {LABELS[c]} | {n} | " + " | ".join(str(figures[c][str(n)][str(s)]["packets_s"]) for s in sizes) + " |")
    lines += ["", f"At {big} B: offered load, guest CPU load (all vCPUs; softirq share), bus bytes per forwarded "
              "packet by kind, bus utilisation, frames lost by the router's ingress NICs (memory full), frames held for "
              "a busy egress and the module's drops (all rounds):", "",
              "| config | sources | offered Mbit/s | forwarded Mbit/s | CPU load | softirq | bus B/packet | "
              "h2d | d2h | peer | pio | bus busy | ingress losses | held | module drops |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for c in configs:
        for n in sources:
            f = figures[c][str(n)][str(big)]
            k = f["bus_bytes_per_packet_by_kind"]
            drops = ", ".join(f"{a} {b}" for a, b in f["fwd_dropped"].items()) or "0"
            lines.append(f"| {LABELS[c]} | {n} | {f['offered_mbit_s']} | {f['mbit_s']} | {f['cpu_load']} | "
                         f"{f['softirq_load']} | {f['bus_bytes_per_packet']} | {k['h2d']} | {k['d2h']} | {k['peer']} | "
                         f"{k['pio']} | {f['bus_utilisation']} | {f['router_rx_dropped']} | {f['fwd_held']} | {drops} |")
    lines += ["", "| ratio | median | range | target | met |", "|---|---:|---|---|---|"]
    for key, r in ratios.items():
        if "points" in r:
            lines.append(f"| {key} (geometric mean of {len(r['points'])} points) | {r['geometric_mean']} | "
                         f"{r['min']} - {r['max']} | >= 0.9 | {'yes' if r['geometric_mean'] >= 0.9 else 'no'} |")
            continue
        target, met = "", ""
        if key.startswith("header-copy_over_conventional"):
            target, met = ">= 1.45", "yes" if r["median"] >= 1.45 else "no"
        elif key.startswith("bus_bytes_per_packet"):
            target, met = f"1 +- 0.05 of {r['expected_bytes']} B", "yes" if abs(1 - r["median"]) <= 0.05 else "no"
        elif key.startswith("in-place_over_conventional"):
            target, met = ">= 1", "yes" if r["median"] >= 1 else "no"
        elif key.startswith("in-place_over_header-copy"):
            target, met = "<= 1", "yes" if r["median"] <= 1 else "no"
        lines.append(f"| {key} | {r['median']} | {r['min']} - {r['max']} | {target} | {met} |")
    lines += ["", "Every datagram was checked by the sinks: "
              f"{integrity['corrupt']} arrived changed, {integrity['duplicates']} twice, "
              f"{integrity['reordered']} out of order (all points, all rounds).",
              "", "The guest's CPU load covers the sources, the sinks, the router and the NICs' emulation together "
              "(one guest, two vCPUs), not the router alone as seed 000's cpuload did."]
    md = "\n".join(lines) + "\n"
    (out / "results.md").write_text(md)
    print(md)

    def series(n, key, cs):
        return [(LABELS[c], [(s, figures[c][str(n)][str(s)][key]) for s in sizes]) for c in cs]

    mid = 2 if 2 in sources else max(sources)
    panels = [(f"UDP forwarded, {mid} source(s)", "Mbit/s", series(mid, "mbit_s", configs))]
    if max(sources) != mid:
        panels.append((f"UDP forwarded, {max(sources)} sources", "Mbit/s", series(max(sources), "mbit_s", configs)))
    best = "header-copy" if "header-copy" in have else configs[0]
    panels.append((f"{LABELS[best]} by number of sources", "Mbit/s",
                   [(f"{n} source(s)", [(s, figures[best][str(n)][str(s)]["mbit_s"]) for s in sizes]) for n in sources]))
    panels.append((f"{LABELS[best]} packet rate by number of sources", "packets/s",
                   [(f"{n} source(s)", [(s, figures[best][str(n)][str(s)]["packets_s"]) for s in sizes]) for n in sources]))
    if not line_panels(out, f"fwd bench (medians of {len(rounds)} rounds), time_scale {scale:g}", panels):
        return 1
    print(f"wrote {out / 'results.md'}, {out / 'results.json'}, {out / 'results.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
