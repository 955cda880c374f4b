"""Host tests of the harness's own judgement: KTAP counting and the
kernel-log problem detector. If these are wrong, every VM verdict is."""

import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import ktap  # noqa: E402
import vm  # noqa: E402

SUITE = """KTAP version 1
1..1
    KTAP version 1
    # Subtest: demo
    1..3
    ok 1 first
    not ok 2 second
    ok 3 third # SKIP not today
# demo: pass:1 fail:1 skip:1 total:3
not ok 1 demo
"""

PARAMETERISED = """KTAP version 1
1..1
    KTAP version 1
    # Subtest: p
    1..2
        KTAP version 1
        # Subtest: by_size
        ok 1 size 1
        ok 2 size 2
        not ok 3 size 3
    not ok 1 by_size
    ok 2 plain
not ok 1 p
"""


class KtapTests(unittest.TestCase):
    def test_counts_leaf_cases_only(self):
        r = ktap.parse("demo", SUITE)
        self.assertEqual((r.passed, r.failed, r.skipped), (1, 1, 1))
        self.assertEqual(r.failures, ["demo.second"])

    def test_parameterised_cases_are_leaves(self):
        r = ktap.parse("p", PARAMETERISED)
        self.assertEqual((r.passed, r.failed, r.skipped), (3, 1, 0))

    def test_missing_cases_are_failures(self):
        truncated = "\n".join(SUITE.splitlines()[:6])  # crashed after case 1
        r = ktap.parse("demo", truncated)
        self.assertEqual((r.passed, r.failed), (1, 2))

    def test_empty_results_fail(self):
        r = ktap.parse("none", "KTAP version 1\n")
        self.assertEqual(r.failed, 1)


class ProblemDetectorTests(unittest.TestCase):
    def test_flags_each_bug_class(self):
        for line in [
            "[  1.0] BUG: KASAN: slab-use-after-free in foo+0x1/0x2",
            "[  1.0] Oops: general protection fault, probably for non-canonical address",
            "[  1.0] WARNING: CPU: 0 PID: 1 at net/core/dev.c:1 foo",
            "[  1.0] WARNING: possible circular locking dependency detected",
            "[  1.0] BUG: sleeping function called from invalid context at mm/slab.c:1",
            "[  1.0] INFO: task kworker/0:1:42 blocked for more than 60 seconds.",
            "[  1.0] kernel BUG at lib/list_debug.c:10!",
            "unreferenced object 0xffff888001234567 (size 64):",
            "[  1.0] watchdog: BUG: soft lockup - CPU#0 stuck for 22s!",
        ]:
            self.assertEqual(len(vm.kernel_problems(line)), 1, line)

    def test_clean_log_has_no_problems(self):
        log = "[  0.0] Linux version 7.3.4\n[  1.0] ebd: EBD wire protocol v1 loaded\n[ 2.0] # Totals: pass:3 fail:0\n"
        self.assertEqual(vm.kernel_problems(log), [])


if __name__ == "__main__":
    unittest.main()


class KunitEvidenceTest(unittest.TestCase):
    """A failed KUnit case is reported with the guest's lines that explain it."""

    def test_failure_lines_come_with_the_case(self):
        import tempfile

        import run_tests

        with tempfile.TemporaryDirectory() as d:
            step = Path(d)
            (step / "dmesg.txt").write_text(
                "[ 1.0] pnic: loaded\n"
                "[ 2.0] pnic: check failed at line 470: a == b (1 != 2)\n"
                "[ 2.1]     not ok 2 a_case\n"
                "[ 2.2]     ok 3 another_case\n")
            got = run_tests.kunit_evidence(step, "suite.a_case")
            self.assertIn("check failed at line 470", got)
            self.assertIn("not ok 2 a_case", got)
            self.assertNotIn("loaded", got)
            self.assertNotIn("another_case", got)
            self.assertEqual(run_tests.kunit_evidence(None, "suite.a_case"), "")
