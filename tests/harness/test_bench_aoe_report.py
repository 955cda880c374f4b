"""Host tests of the aoe section's report (scripts/bench_aoe_report.py):
ratios of the Rust initiator to aoe.ko are medians of per-round ratios,
shown beside the link of the same rounds, and targets are met or missed as
the made-up figures say."""

import json
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
WORKLOADS = {"seqread": "read", "seqwrite": "write", "randread": "read", "randwrite": "write", "qd1read": "read"}


def make_raw(root: Path, links_mib: list[float], aoei: list[float]) -> Path:
    """Rounds whose link is LINKS_MIB; aoe.ko gives 100 (MiB/s, IOPS, µs)
    in every round, aoei AOEI[r] in round r."""
    raw = root / "raw"
    raw.mkdir()
    for r, link in enumerate(links_mib, start=1):
        (raw / f"link-tcp.r{r}.json").write_text(json.dumps(
            {"end": {"sum_received": {"bits_per_second": link * 8 * 2**20}}}))
        for d, figure in (("aoe", 100.0), ("aoei", aoei[r - 1])):
            for w, direction in WORKLOADS.items():
                lat = {"percentile": {"50.000000": figure * 1000, "99.000000": 2 * figure * 1000}}
                (raw / f"{d}-{w}.r{r}.json").write_text(json.dumps(
                    {"jobs": [{direction: {"bw_bytes": figure * 2**20, "iops": figure, "lat_ns": lat}}]}))
    (raw / "aoei-disk.txt").write_text("aoei0 1048576 16 17 0x4019\n")
    return raw


def report(raw: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPTS / "bench_aoe_report.py"), str(raw), str(out)],
                          capture_output=True, text=True, cwd=SCRIPTS)


class AoeReport(unittest.TestCase):
    def test_ratios_are_medians_of_rounds_beside_the_link(self):
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            p = report(make_raw(root, [120.0, 200.0, 140.0], aoei=[250.0, 90.0, 110.0]), root / "out")
            self.assertEqual(p.returncode, 0, p.stderr)
            doc = json.loads((root / "out" / "results.json").read_text())
            self.assertEqual(doc["link_mib_per_s"], 140.0)
            self.assertEqual(doc["ratios"]["randread_aoei_over_aoe"], {"median": 1.1, "range": [0.9, 2.5]})
            self.assertTrue(doc["targets_met"]["aoei / aoe.ko randread >= 1.0"])
            self.assertEqual(doc["aoei_target"], {"sectors": 1048576, "buffer_count": 16, "sectors_per_command": 17})
            md = (root / "out" / "results.md").read_text()
            self.assertIn("link 140.0 MiB/s", md)
            self.assertIn("| 4K rand read QD32 (IOPS) | 1.1 | 0.9 - 2.5 | >= 1.0 | yes |", md)
            # Latency carries no target.
            self.assertIn("| 4K read QD1 p50 (µs) | 1.1 | 0.9 - 2.5 |  |  |", md)
            self.assertTrue((root / "out" / "results.png").exists())

    def test_a_slower_initiator_misses(self):
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            p = report(make_raw(root, [120.0, 120.0], aoei=[80.0, 95.0]), root / "out")
            self.assertEqual(p.returncode, 0, p.stderr)
            doc = json.loads((root / "out" / "results.json").read_text())
            self.assertFalse(any(doc["targets_met"].values()))
            self.assertEqual(len(doc["targets_met"]), 4)

    def test_a_missing_figure_is_an_error(self):
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            raw = make_raw(root, [120.0], aoei=[100.0])
            (raw / "aoei-seqwrite.r1.json").unlink()
            p = report(raw, root / "out")
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("missing", p.stderr)


if __name__ == "__main__":
    unittest.main()
