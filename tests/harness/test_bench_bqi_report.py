"""Host tests of the bqi benchmark's report (scripts/bench_bqi_report.py):
medians and per-round ratios from the raw files, targets met or missed as
the made-up figures say, and a transport that cannot carry a size reported
as missing rather than as zero."""

import json
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
SIZES = [64, 1500, 9000]


def make_raw(root: Path, bqi_rtt: float, bqi_pps: float, xdp_9000: bool = True, demux_ns: int = 50) -> Path:
    raw = root / "raw"
    raw.mkdir()
    (raw / "sizes.txt").write_text(" ".join(map(str, SIZES)) + "\n")
    for r in (1, 2, 3):
        for s in SIZES:
            for t, base_rtt, pps in (("bqi", bqi_rtt, bqi_pps), ("packet", 900.0, 8000.0), ("xdp", 500.0, 20000.0)):
                if t == "xdp" and s == 9000 and not xdp_9000:
                    (raw / f"{t}-rtt-{s}.r{r}.json").write_text("Error: 9000-byte frames exceed this transport's 3840 bytes\n")
                    (raw / f"{t}-tput-{s}.r{r}.json").write_text("Error: too big\n")
                    continue
                (raw / f"{t}-rtt-{s}.r{r}.json").write_text(json.dumps(
                    {"count": 1000, "lost": 0, "rtt_us": {"p50": base_rtt, "p99": base_rtt * 2}}))
                counters = {"device.demux.ns": (demux_ns + 30) * 10, "device.demux.clock_ns": 300,
                            "device.demux.samples": 10} if t == "bqi" else {}
                (raw / f"{t}-tput-{s}.r{r}.json").write_text(json.dumps({"pps": pps, "counters": counters}))
            (raw / f"udp-rtt-{s}.r{r}.txt").write_text(
                "sockperf: ---> percentile 99.000 =  1200.000\nsockperf: ---> percentile 50.000 =  600.000\n")
            (raw / f"udp-tput-{s}.r{r}.json").write_text(json.dumps({"packets_s": 15000.0}))
    return raw


def report(raw: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPTS / "bench_bqi_report.py"), str(raw), str(out)],
                          capture_output=True, text=True, cwd=SCRIPTS)


class BqiReport(unittest.TestCase):
    def test_targets_follow_the_figures(self):
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            p = report(make_raw(root, bqi_rtt=400.0, bqi_pps=30000.0), root / "out")
            self.assertEqual(p.returncode, 0, p.stderr)
            doc = json.loads((root / "out" / "results.json").read_text())
            self.assertEqual(doc["ratios"]["rtt64_bqi_over_best"], 0.8)  # 400 against xdp's 500
            self.assertEqual(doc["ratios"]["tput1500_bqi_over_xdp"], 1.5)
            self.assertEqual(doc["results"]["bqi"]["1500"]["mbit_s"], round(30000 * 1500 * 8 / 1e6, 1))
            self.assertEqual(doc["results"]["udp"]["64"]["rtt_p50_us"], 600.0)
            self.assertEqual(doc["demux_ns_per_frame"], 50.0)
            self.assertTrue(all(doc["targets_met"].values()), doc["targets_met"])

    def test_slower_bqi_misses_and_a_missing_anchor_is_not_a_pass(self):
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            p = report(make_raw(root, bqi_rtt=700.0, bqi_pps=10000.0, xdp_9000=False, demux_ns=150), root / "out")
            self.assertEqual(p.returncode, 0, p.stderr)
            doc = json.loads((root / "out" / "results.json").read_text())
            met = doc["targets_met"]
            self.assertFalse(met["64 B round trip at most the best anchor's"])
            self.assertFalse(met["1500 B throughput at least AF_XDP copy mode's"])
            self.assertFalse(met["9000 B throughput at least AF_XDP copy mode's"])
            self.assertFalse(met["demultiplexing under 100 ns per frame"])
            self.assertIsNone(doc["ratios"]["tput9000_bqi_over_xdp"])
            self.assertIsNone(doc["results"]["xdp"]["9000"]["mbit_s"])
            self.assertIn("n/a", (root / "out" / "results.md").read_text())


if __name__ == "__main__":
    unittest.main()
