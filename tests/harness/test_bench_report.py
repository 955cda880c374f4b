"""Host tests of the EBD benchmark's report (scripts/bench_report.py):
ratios are medians of per-round ratios, every ratio is shown beside the
link measured in the same rounds, and targets are met or missed as the
made-up figures say."""

import json
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
WORKLOADS = {"seqread": "read", "seqwrite": "write", "randread": "read", "randwrite": "write",
             "qd1read": "read", "qd1write": "write", "seqread2j": "read", "randread2j": "read",
             "randwrite2j": "write"}
DEVICES = ("ebd", "aoe", "nbd", "nvme")


def make_raw(root: Path, links_mib: list[float], ebd_factor: float, nvme_latency_us: float = 100.0) -> Path:
    """Rounds whose link is LINKS_MIB; the anchors give 100 (MiB/s or
    IOPS, and µs of QD1 median latency; p99 twice that), EBD gives
    EBD_FACTOR times that in round 1 and 1.0x elsewhere; NVMe/TCP's QD1
    median is NVME_LATENCY_US."""
    raw = root / "raw"
    raw.mkdir()
    for r, link in enumerate(links_mib, start=1):
        (raw / f"link-tcp.r{r}.json").write_text(json.dumps(
            {"end": {"sum_received": {"bits_per_second": link * 8 * 2**20}}}))
        for device in DEVICES:
            figure = 100.0 * (ebd_factor if device == "ebd" and r == 1 else 1.0)
            latency = nvme_latency_us if device == "nvme" else figure
            for w, direction in WORKLOADS.items():
                lat = {"percentile": {"50.000000": latency * 1000, "99.000000": 2 * latency * 1000}}
                (raw / f"{device}-{w}.r{r}.json").write_text(json.dumps(
                    {"jobs": [{direction: {"bw_bytes": figure * 2**20, "iops": figure, "lat_ns": lat}}]}))
    (raw / "memory.json").write_text(json.dumps({"ebd_pinned_bytes": 4096, "ebd_window_bytes": 65536}))
    return raw


def report(raw: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPTS / "bench_report.py"), str(raw), str(out)],
                          capture_output=True, text=True, cwd=SCRIPTS)


class EbdReport(unittest.TestCase):
    def test_ratios_come_with_the_link_of_their_rounds(self):
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            p = report(make_raw(root, [120.0, 200.0, 140.0], ebd_factor=2.0), root / "out")
            self.assertEqual(p.returncode, 0, p.stderr)
            doc = json.loads((root / "out" / "results.json").read_text())
            self.assertEqual(doc["per_round"]["link_tcp_mib_s"], [120.0, 200.0, 140.0])
            self.assertEqual(doc["link_tcp_mib_s"], 140.0)
            self.assertEqual(doc["link_tcp_mib_s_range"], [120.0, 200.0])
            # Round 1 alone had EBD twice the anchors: the median is 1.0.
            self.assertEqual(doc["per_round"]["ratios"]["seqread_ebd_over_nbd"], [2.0, 1.0, 1.0])
            self.assertEqual(doc["ratios"]["seqread_ebd_over_nbd"], 1.0)
            self.assertEqual(doc["ratio_range"]["seqread_ebd_over_nbd"], [1.0, 2.0])
            self.assertTrue(doc["targets_met"]["EBD / NBD seq read"])
            self.assertFalse(doc["targets_met"]["EBD / AoE 4K read IOPS"])
            md = (root / "out" / "results.md").read_text()
            self.assertIn("| EBD / NBD seq read | 1.0 | 1.0 - 2.0 | 140.0 (120.0 - 200.0) | >= 1.0 | yes |", md)
            self.assertIn("| 1 | 120.0 | 2.0 | 2.0 | 2.0 | 2.0 |", md)
            self.assertIn("| 2 | 200.0 | 1.0 | 1.0 | 1.0 | 1.0 |", md)

    def test_latency_is_met_when_at_most_the_anchors(self):
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            # EBD's QD1 median is 100 µs in every round; NVMe/TCP's 80 µs:
            # EBD is slower, the ratio 1.25, the target (at most 1.0) missed.
            p = report(make_raw(root, [120.0, 120.0, 120.0], ebd_factor=1.0, nvme_latency_us=80.0), root / "out")
            self.assertEqual(p.returncode, 0, p.stderr)
            doc = json.loads((root / "out" / "results.json").read_text())
            self.assertEqual(doc["ratios"]["qd1read_p50_ebd_over_nvme"], 1.25)
            self.assertFalse(doc["targets_met"]["EBD / NVMe/TCP 4K read QD1 median latency"])
            self.assertEqual(doc["latency_p99_us"]["nvme"]["qd1read"], 160.0)
            md = (root / "out" / "results.md").read_text()
            self.assertIn("| EBD / NVMe/TCP 4K read QD1 median latency | 1.25 | 1.25 - 1.25 |", md)
            self.assertIn("<= 1.0 | no |", md)
            self.assertIn("| NVMe/TCP | 100.0 | 100.0 | 100 | 100 | 80.0 / 160.0 |", md)
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            p = report(make_raw(root, [120.0], ebd_factor=1.0, nvme_latency_us=120.0), root / "out")
            self.assertEqual(p.returncode, 0, p.stderr)
            doc = json.loads((root / "out" / "results.json").read_text())
            self.assertTrue(doc["targets_met"]["EBD / NVMe/TCP 4K read QD1 median latency"])
            # Two jobs gave what one did: scaling 1.0, below its 1.5.
            self.assertEqual(doc["ratios"]["randread_2j_over_1j_ebd"], 1.0)
            self.assertFalse(doc["targets_met"]["EBD 4K read IOPS, two jobs / one"])

    def test_a_missing_figure_is_an_error(self):
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            raw = make_raw(root, [120.0], ebd_factor=1.0)
            (raw / "aoe-randwrite.r1.json").unlink()
            p = report(raw, root / "out")
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("missing", p.stderr)

    def test_server_cpu_and_the_non_polling_server_are_reported(self):
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            raw = make_raw(root, [120.0, 120.0, 120.0], ebd_factor=1.0, nvme_latency_us=80.0)
            for r, cpu in enumerate([4.5, 9.0, 6.3], start=1):
                (raw / f"ebd-qd1read.r{r}.cpu.json").write_text(
                    json.dumps({"cpu_s": cpu, "wall_s": 9.0, "idle_share": 0.1 * r}))
                for w, direction in (("qd1read", "read"), ("qd1write", "write")):
                    lat = {"percentile": {"50.000000": 200.0 * 1000, "99.000000": 400.0 * 1000}}
                    (raw / f"ebd-nopoll-{w}.r{r}.json").write_text(json.dumps({"jobs": [{direction: {"lat_ns": lat}}]}))
            p = report(raw, root / "out")
            self.assertEqual(p.returncode, 0, p.stderr)
            doc = json.loads((root / "out" / "results.json").read_text())
            self.assertEqual(doc["ebd_server_cpu_share"], {"qd1read": 0.7})
            self.assertEqual(doc["ebd_idle_share"], {"qd1read": 0.2})
            self.assertEqual(doc["ebd_server_not_polling_latency_us"]["qd1read"], {"p50": 200.0, "p99": 400.0})
            self.assertEqual(doc["ratios"]["qd1read_p50_ebd_not_polling_over_nvme"], 2.5)
            md = (root / "out" / "results.md").read_text()
            self.assertIn("EBD with ebd-server not polling, qd1read p50 / p99: 200.0 / 400.0 µs", md)
            # The target stays the polling server's.
            self.assertEqual(doc["ratios"]["qd1read_p50_ebd_over_nvme"], 1.25)


if __name__ == "__main__":
    unittest.main()
