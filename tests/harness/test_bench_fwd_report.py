"""Host tests of the fwd benchmark's report (scripts/bench_fwd_report.py):
figures from the raw files, and targets that are met or missed as the
figures say, on made-up measurements."""

import json
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
SIZES = [128, 8192]
SOURCES = [1, 2]


def write_point(d: Path, size: int, n: int, pps: float, bus: dict[str, int], corrupt: int = 0,
                stagger: float = 0.0) -> None:
    """One measurement: N flows of PPS packets/s each for 3 s, flow i
    starting i * STAGGER seconds after the first."""
    d.mkdir(parents=True)
    received = int(pps * 3) + 1
    for i in range(1, n + 1):
        (d / f"sink{i}.json").write_text(json.dumps({
            "flow": i, "received": received, "bytes": received * (size - 28), "lost": 5, "duplicates": 0,
            "reordered": 0, "corrupt": corrupt, "foreign": 0, "seconds": 3.0, "first_unix_s": 1000.0 + i * stagger,
            "mbit_s": 0, "packets_s": pps}))
        (d / f"send{i}.json").write_text(json.dumps({"flow": i, "sent": received + 5, "seconds": 3.0,
                                                     "packets_s": pps * 1.5}))
    (d / "cpu.json").write_text(json.dumps({"busy_jiffies": 300, "softirq_jiffies": 100, "total_jiffies": 600,
                                            "cpus": 2}))
    lines = []
    for kind in ("h2d", "d2h", "peer", "pio"):
        lines += [f"{kind}.transactions 1", f"{kind}.bytes {bus.get(kind, 0) * received * n}",
                  f"{kind}.busy_ns {10**9}", f"{kind}.wait_ns 0"]
    (d / "bus.txt").write_text("\n".join(lines) + "\n")
    (d / "pair-s1.before.txt").write_text("b.rx_dropped 10\n")
    (d / "pair-s1.after.txt").write_text("b.rx_dropped 25\nb.rx_missed 7\n")
    (d / "fwd-s1b.txt").write_text("forwarded.conventional 1\nheld 4\ndropped.backlog_full 3\nto_stack.local 2\n")


def make_raw(root: Path, header_copy_gain: float, conventional_share: float, bus_ok: bool = True,
             corrupt: int = 0, stagger: float = 0.0) -> Path:
    raw = root / "raw"
    raw.mkdir()
    (raw / "time-scale.txt").write_text("8\n")
    (raw / "runtime.txt").write_text("3\n")
    (raw / "bus-params.txt").write_text("133333333 240 1000\n")
    base = {128: 10000.0, 8192: 1000.0}
    for cfg, gain in [("ipfwd-pnic", 1.0), ("conventional", conventional_share),
                      ("in-place", conventional_share * (1 + header_copy_gain) / 2),
                      ("header-copy", conventional_share * header_copy_gain), ("ipfwd-veth", 3.0)]:
        for n in SOURCES:
            for size in SIZES:
                frame = size + 14
                if cfg in ("header-copy",):
                    bus = {"peer": frame, "d2h": 34, "h2d": 34 if bus_ok else 34 + frame}
                elif cfg == "in-place":
                    bus = {"peer": frame, "pio": 48}
                elif cfg == "ipfwd-veth":
                    bus = {}
                else:
                    bus = {"d2h": frame, "h2d": frame}
                write_point(raw / cfg / str(n) / str(size) / "r1", size, n, base[size] * gain, bus, corrupt, stagger)
    return raw


class FwdReport(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = Path(self.tmp.name)

    def tearDown(self):
        self.tmp.cleanup()

    def report(self, raw: Path) -> dict:
        out = self.root / "out"
        p = subprocess.run([sys.executable, str(SCRIPTS / "bench_fwd_report.py"), str(raw), str(out)],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        for name in ("results.md", "results.json", "results.png"):
            self.assertTrue((out / name).exists(), name)
        return json.loads((out / "results.json").read_text())

    def test_figures_come_from_the_sinks_and_the_bus(self):
        r = self.report(make_raw(self.root, 1.6, 0.95))
        f = r["figures"]["header-copy"]["2"]["8192"]
        # Two flows of 1.6 * 0.95 * 1000 packets/s of 8192 bytes.
        self.assertEqual(f["packets_s"], 3040)
        self.assertAlmostEqual(f["mbit_s"], 3040 * 8192 * 8 / 1e6, places=0)
        self.assertEqual(f["bus_bytes_per_packet"], 8206 + 68)
        self.assertEqual(f["bus_bytes_per_packet_by_kind"]["peer"], 8206)
        self.assertEqual(f["cpu_load"], 0.5)
        self.assertEqual(f["router_rx_dropped"], 22)
        self.assertEqual(f["fwd_held"], 4)
        self.assertEqual(f["fwd_dropped"], {"dropped.backlog_full": 3})
        self.assertEqual(f["lost"], 10)
        self.assertEqual(f["bus_utilisation"], round(4 / 3, 3))

    def test_targets_met(self):
        r = self.report(make_raw(self.root, 1.6, 0.95))
        self.assertTrue(all(r["targets_met"].values()), r["targets_met"])
        self.assertEqual(r["ratios"]["header-copy_over_conventional_2src_8192B"]["median"], 1.6)
        self.assertEqual(r["ratios"]["conventional_over_ipfwd-pnic"]["geometric_mean"], 0.95)

    def test_targets_missed(self):
        r = self.report(make_raw(self.root, 1.3, 0.8, bus_ok=False))
        t = r["targets_met"]
        self.assertFalse(t["header-copy >= 1.45x conventional, 2 sources, 8192 B"])
        self.assertFalse(t["fwd conventional >= 0.9x ip_forward over pnic (geometric mean)"])
        self.assertFalse([k for k in t if k.startswith("header-copy: bus bytes") and t[k]])
        # What was right stays met.
        self.assertTrue(t["conventional: bus bytes per packet within 5% of two packets (16412 B), 8192 B"])

    def test_flows_that_did_not_overlap_are_not_added_up(self):
        # Two flows of 1000 packets/s at 8 KiB (ip_forward), the second
        # starting when the first ended: 1000 packets/s in all, not 2000.
        r = self.report(make_raw(self.root, 1.6, 0.95, stagger=3.0))
        self.assertEqual(r["figures"]["ipfwd-pnic"]["2"]["8192"]["packets_s"], 1000)
        self.assertEqual(r["figures"]["ipfwd-pnic"]["1"]["8192"]["packets_s"], 1000)

    def test_damage_is_reported(self):
        r = self.report(make_raw(self.root, 1.6, 0.95, corrupt=1))
        self.assertEqual(r["integrity"]["corrupt"], 5 * 2 * 3)

    def test_no_measurements_is_an_error(self):
        raw = self.root / "empty"
        raw.mkdir()
        p = subprocess.run([sys.executable, str(SCRIPTS / "bench_fwd_report.py"), str(raw), str(self.root / "o")],
                           capture_output=True, text=True)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("no measurements", p.stderr)


if __name__ == "__main__":
    unittest.main()
