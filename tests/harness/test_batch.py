"""Host tests of how a shared boot's steps are judged (scripts/run_tests.py):
each step on its own exit status, time limit, leftovers and slice of the
kernel log, and the boot as a whole on what no step accounts for."""

import json
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import run_tests  # noqa: E402

OOPS = "[   12.000001] BUG: kernel NULL pointer dereference, address: 0000000000000008\n" \
       "[   12.000002] Oops: 0000 [#1] PREEMPT SMP\n"


def step_dir(root: Path, name: str, status=0, timed_out=False, leftovers=(), dmesg="", fatal=()) -> Path:
    d = root / name
    d.mkdir()
    (d / "result.json").write_text(json.dumps({
        "name": name, "status": status, "timed_out": timed_out, "seconds": 1.0,
        "leftovers": list(leftovers), "new_taint": 0, "fatal_taint": list(fatal)}))
    (d / "dmesg.txt").write_text(dmesg)
    return d


class JudgeStep(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = Path(self.tmp.name)

    def tearDown(self):
        self.tmp.cleanup()

    def test_clean_step_passes(self):
        v = run_tests.judge_step(step_dir(self.root, "a", dmesg="[    1.0] ebd: loaded\n"))
        self.assertTrue(v.passed)

    def test_exit_status_fails(self):
        v = run_tests.judge_step(step_dir(self.root, "a", status=1))
        self.assertFalse(v.passed)

    def test_skip_status_is_not_a_failure(self):
        v = run_tests.judge_step(step_dir(self.root, "a", status=77))
        self.assertTrue(v.passed)
        self.assertEqual(v.status, 77)

    def test_oops_in_its_slice_fails_despite_exit_zero(self):
        v = run_tests.judge_step(step_dir(self.root, "a", dmesg=OOPS))
        self.assertFalse(v.passed)
        self.assertTrue(v.problems)

    def test_timeout_leftovers_and_fatal_taint_each_fail(self):
        for kw in ({"timed_out": True, "status": -9}, {"leftovers": ["module ebd"]}, {"fatal": ["D (oops)"]}):
            with self.subTest(kw=kw):
                v = run_tests.judge_step(step_dir(self.root, f"s{len(list(self.root.iterdir()))}", **kw))
                self.assertFalse(v.passed)

    def test_log_message_strips_the_timestamp(self):
        self.assertEqual(run_tests.log_message("[   12.000002] Oops: 0000"), "Oops: 0000")
        self.assertEqual(run_tests.log_message("no stamp"), "no stamp")


class JudgeBoot(unittest.TestCase):
    """A boot's problems are charged to the step whose slice shows them;
    what no step shows, and leaks, fail the boot; a step running when the
    boot died fails; steps that never started are left for the next boot."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = Path(self.tmp.name)
        self.steps = [run_tests.Step(n, ["true"]) for n in ("a", "b", "c")]

    def tearDown(self):
        self.tmp.cleanup()

    def result(self, problems, reasons=()):
        return {"problems": problems, "reasons": list(reasons)}

    def test_problem_in_a_slice_is_that_steps_alone(self):
        step_dir(self.root, "a")
        step_dir(self.root, "b", dmesg=OOPS)
        step_dir(self.root, "c")
        problems = run_tests.vm.kernel_problems(OOPS)
        judged, still, reasons, _ = run_tests.judge_boot(self.root, self.steps, self.result(problems))
        self.assertTrue(judged["a"].passed and judged["c"].passed)
        self.assertFalse(judged["b"].passed)
        self.assertEqual((still, reasons), ([], []))

    def test_problem_outside_every_slice_fails_the_boot(self):
        for n in "abc":
            step_dir(self.root, n)
        problems = run_tests.vm.kernel_problems(OOPS)
        judged, _, reasons, shown = run_tests.judge_boot(self.root, self.steps, self.result(problems))
        self.assertTrue(all(v.passed for v in judged.values()))
        self.assertEqual(len(reasons), 1)
        self.assertTrue(shown)

    def test_leak_fails_the_boot(self):
        for n in "abc":
            step_dir(self.root, n)
        leak = "unreferenced object 0xffff888003a1c000 (size 64):\n  comm \"insmod\"\n"
        (self.root / "kmemleak.txt").write_text(leak)
        problems = run_tests.vm.kernel_problems(leak)
        _, _, reasons, _ = run_tests.judge_boot(self.root, self.steps, self.result(problems))
        self.assertTrue(any("leaked" in r for r in reasons))

    def test_death_fails_the_running_step_and_leaves_the_rest(self):
        step_dir(self.root, "a")
        (self.root / "b").mkdir()
        (self.root / "b" / "started").write_text("1\n")
        judged, still, reasons, _ = run_tests.judge_boot(
            self.root, self.steps, self.result([], ["guest never finished (no exit status): crashed or panicked"]))
        self.assertTrue(judged["a"].passed)
        self.assertFalse(judged["b"].passed)
        self.assertEqual([s.name for s in still], ["c"])
        self.assertEqual(reasons, [])

    def test_no_step_run_fails_the_boot(self):
        _, still, reasons, _ = run_tests.judge_boot(self.root, self.steps, self.result([], ["timed out"]))
        self.assertEqual(len(still), 3)
        self.assertTrue(any("no step ran" in r for r in reasons))


class Fixtures(unittest.TestCase):
    """Steps that share a fixture run inside its set-up and tear-down; a
    boot that died among them sets it up again for the ones left."""

    def names(self, steps):
        return [s.name for s in steps]

    def test_fixture_wraps_the_steps_that_share_it(self):
        steps = [run_tests.Step("a", ["true"]), run_tests.Step("b", ["true"], fixture="ebd"),
                 run_tests.Step("c", ["true"], fixture="ebd"), run_tests.Step("d", ["true"])]
        self.assertEqual(self.names(run_tests.with_fixtures(steps)),
                         ["a", "fixture-ebd-up", "b", "c", "fixture-ebd-down", "d"])

    def test_replanning_what_a_crash_left_sets_the_fixture_up_again(self):
        first = run_tests.with_fixtures([run_tests.Step("b", ["true"], fixture="ebd"),
                                         run_tests.Step("c", ["true"], fixture="ebd")])
        left = first[2:]  # the boot died in "b": "c" and the tear-down never ran
        self.assertEqual(self.names(run_tests.with_fixtures(left)), ["fixture-ebd-up", "c", "fixture-ebd-down"])

    def test_plan_marks_roles_and_environment(self):
        up, down = run_tests.fixture_step("ebd", "up"), run_tests.fixture_step("ebd", "down")
        self.assertTrue(up.plan([])["fixture_up"])
        self.assertEqual(down.plan([])["baseline"], up.name)
        inside = run_tests.Step("b", ["true"], fixture="ebd").plan([])
        self.assertEqual(inside["env"], {"POLYNIC_FIXTURE": "ebd"})
        self.assertNotIn("fixture_up", inside)
        self.assertNotIn("baseline", inside)

    def test_scenarios_declare_their_fixture_in_the_header(self):
        with tempfile.TemporaryDirectory() as tmp:
            a, b = Path(tmp) / "a.sh", Path(tmp) / "b.sh"
            a.write_text("#!/bin/bash\n# fixture: ebd (shared)\ntrue\n")
            b.write_text("#!/bin/bash\n# no fixture here\ntrue\n")
            self.assertEqual(run_tests.scenario_fixture(a), "ebd")
            self.assertIsNone(run_tests.scenario_fixture(b))


if __name__ == "__main__":
    unittest.main()
