"""Host tests of the userlevel benchmark's report
(scripts/bench_userlevel_report.py): medians and per-round ratios from the
raw files, targets met or missed as the made-up figures say, and a failed
run reported as missing rather than as zero."""

import json
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
SIZES = [16, 1024]


def make_raw(root: Path, lib_rtt: float, lib_mbit: float, lib_tcp_fails: bool = False) -> Path:
    raw = root / "raw"
    raw.mkdir()
    (raw / "sizes.txt").write_text(" ".join(map(str, SIZES)) + "\n")
    for r in (1, 2, 3):
        for proto in ("udp", "tcp"):
            for s in SIZES:
                (raw / f"lib-{proto}-rtt-{s}.r{r}.json").write_text(json.dumps(
                    {"count": 1000, "lost": 0, "rtt_us": {"p50": lib_rtt, "p99": lib_rtt * 3}}))
                (raw / f"lib-{proto}-bp-rtt-{s}.r{r}.json").write_text(json.dumps(
                    {"count": 1000, "lost": 0, "rtt_us": {"p50": lib_rtt / 2, "p99": lib_rtt}}))
                (raw / f"kernel-{proto}-rtt-{s}.r{r}.txt").write_text(
                    "sockperf: ---> percentile 99.000 =  300.000\nsockperf: ---> percentile 50.000 =  100.000\n")
            if proto == "tcp" and lib_tcp_fails:
                (raw / f"lib-tcp-tput.r{r}.json").write_text("Error: connection reset\n")
            else:
                (raw / f"lib-{proto}-tput.r{r}.json").write_text(json.dumps(
                    {"mbit_s": lib_mbit, "bytes": int(lib_mbit * 1e6 / 8 * 5), "seconds": 5}))
            (raw / f"lib-{proto}-cpu.r{r}.json").write_text(json.dumps({"busy_jiffies": 500, "total_jiffies": 1000, "hz": 100}))
            (raw / f"kernel-{proto}-cpu.r{r}.json").write_text(json.dumps({"busy_jiffies": 500, "total_jiffies": 1000, "hz": 100}))
        (raw / f"kernel-tcp-tput.r{r}.json").write_text(json.dumps(
            {"end": {"sum_received": {"bits_per_second": 1e9, "bytes": int(1e9 / 8 * 5)}}}))
        (raw / f"kernel-udp-tput.r{r}.json").write_text(json.dumps(
            {"end": {"sum": {"bits_per_second": 5e8, "lost_percent": 20.0, "seconds": 5.0}}}))
    return raw


def report(raw: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPTS / "bench_userlevel_report.py"), str(raw), str(out)],
                          capture_output=True, text=True, cwd=SCRIPTS)


class UserlevelReport(unittest.TestCase):
    def test_targets_follow_the_figures(self):
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            p = report(make_raw(root, lib_rtt=70.0, lib_mbit=1200.0), root / "out")
            self.assertEqual(p.returncode, 0, p.stderr)
            doc = json.loads((root / "out" / "results.json").read_text())
            self.assertEqual(doc["ratios"]["rtt16_udp_lib_over_kernel"], 0.7)
            self.assertEqual(doc["ratios"]["rtt16_tcp_busy_lib_over_kernel"], 0.35)
            self.assertEqual(doc["notes"], [])
            self.assertEqual(doc["ratios"]["tput_tcp_lib_over_kernel"], 1.2)
            # UDP: 500 Mbit/s sent, 20% lost: 400 received.
            self.assertEqual(doc["results"]["kernel-udp"]["mbit_s"], 400.0)
            self.assertEqual(doc["ratios"]["tput_udp_lib_over_kernel"], 3.0)
            # 5 CPU-seconds over 6 Gbit against 5 over 5.
            self.assertEqual(doc["ratios"]["cpu_per_gbit_tcp_lib_over_kernel"], round(5 / 6, 3))
            self.assertTrue(all(doc["targets_met"].values()), doc["targets_met"])

    def test_slower_library_misses_and_a_failed_run_is_not_a_pass(self):
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            p = report(make_raw(root, lib_rtt=90.0, lib_mbit=600.0, lib_tcp_fails=True), root / "out")
            self.assertEqual(p.returncode, 0, p.stderr)
            doc = json.loads((root / "out" / "results.json").read_text())
            met = doc["targets_met"]
            self.assertFalse(met["UDP 16 B round trip at most 0.8x the kernel's"])
            self.assertFalse(met["TCP throughput at least the kernel's"])
            self.assertIsNone(doc["results"]["lib-tcp"]["mbit_s"])
            self.assertIn("n/a", (root / "out" / "results.md").read_text())


if __name__ == "__main__":
    unittest.main()
