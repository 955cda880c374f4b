#!/usr/bin/env python3
"""polynic test runner: every test, one verdict.

Runs, in order: the host tests of userspace/ (cargo test, clippy) and of the
harness, then one shared VM boot (tests/guest/batch.py) for the KUnit suites
(built-in suites such as the kernel crate's doctests, and the suites of every
polynic module, run at load), each scenario under tests/scenarios/ (those
that share a fixture together, inside it) and the harness self-test, which
proves that a failing KUnit case and a guest oops each turn the run red.

Ends with one line `N passed, N failed, N skipped` counting host tests, KUnit
cases, scenarios and self-test checks; exits non-zero on any failure.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ktap  # noqa: E402
import vm  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Tally:
    """Running counts, per group, with the names of what failed."""

    groups: dict = field(default_factory=dict)
    failures: list = field(default_factory=list)

    def add(self, group: str, passed=0, failed=0, skipped=0, failures=()):
        g = self.groups.setdefault(group, [0, 0, 0])
        g[0] += passed
        g[1] += failed
        g[2] += skipped
        self.failures.extend(f"[{group}] {f}" for f in failures)

    def totals(self):
        return [sum(g[i] for g in self.groups.values()) for i in range(3)]


def say(msg: str) -> None:
    print(f"[polynic] {msg}", flush=True)


CARGO_RESULT_RE = re.compile(r"test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored")


def host_tests(t: Tally) -> None:
    """cargo test over the user-space workspace, counted from its own summary lines."""
    ws = ROOT / "userspace"
    say("host: cargo test")
    p = subprocess.run(["cargo", "test", "--workspace", "--quiet"], cwd=ws, capture_output=True, text=True)
    out = p.stdout + p.stderr
    passed = failed = ignored = 0
    for m in CARGO_RESULT_RE.finditer(out):
        passed += int(m[1])
        failed += int(m[2])
        ignored += int(m[3])
    failures = re.findall(r"^test (\S+) \.\.\. FAILED", out, re.M)
    if p.returncode != 0 and failed == 0:
        # Did not compile, or a test binary crashed: that is a failure too.
        failed = 1
        failures = ["cargo test exited %d:\n%s" % (p.returncode, out[-3000:])]
    t.add("host", passed, failed, ignored, failures)

    say("host: harness unit tests (KTAP counting, kernel-log detector)")
    p = subprocess.run([sys.executable, "-m", "unittest", "discover", "-s", "tests/harness"],
                       cwd=ROOT, capture_output=True, text=True)
    ran = re.search(r"^Ran (\d+) tests?", p.stderr, re.M)
    bad = re.search(r"^FAILED \((?:failures=(\d+))?(?:, )?(?:errors=(\d+))?", p.stderr, re.M)
    nbad = (int(bad[1] or 0) + int(bad[2] or 0)) if bad else 0
    if ran is None or (p.returncode != 0 and nbad == 0):
        t.add("host", failed=1, failures=["harness unit tests did not run:\n" + p.stderr[-2000:]])
    else:
        t.add("host", int(ran[1]) - nbad, nbad, 0, [p.stderr[-2000:]] if nbad else [])

    say("host: cargo clippy -D warnings")
    p = subprocess.run(["cargo", "clippy", "--workspace", "--all-targets", "--quiet", "--", "-D", "warnings"],
                       cwd=ws, capture_output=True, text=True)
    if p.returncode == 0:
        t.add("host", passed=1)
    else:
        t.add("host", failed=1, failures=["clippy:\n" + p.stderr[-3000:]])


def count_kunit(kunit_dir: Path, only: set | None = None) -> dict[str, ktap.SuiteResult]:
    """Parse every saved suite result in kunit_dir."""
    out = {}
    for f in sorted(kunit_dir.glob("*.ktap")):
        if only is not None and f.stem not in only:
            continue
        out[f.stem] = ktap.parse(f.stem, f.read_text(errors="replace"))
    return out


def kunit_evidence(step_out: Path | None, failure: str, limit: int = 12) -> str:
    """The guest's log lines that say why a KUnit case failed (its own
    messages, which go to the kernel log rather than the KTAP file), indented
    under the failure so that a CI log shows the cause."""
    log = step_out / "dmesg.txt" if step_out else None
    if not log or not log.exists():
        return ""
    case = failure.split(".", 1)[-1].split(":")[0]
    hits = [line.rstrip() for line in log.read_text(errors="replace").splitlines()
            if case in line or "check failed" in line or "ASSERTION FAILED" in line or "EXPECTATION FAILED" in line]
    return "".join(f"\n    {line}" for line in hits[:limit])


# Per-step time limit inside the guest, and what the host allows on top of
# the steps for booting, the kmemleak scans and shutting down.
STEP_TIMEOUT = 600
BOOT_ALLOWANCE = 900
# A batch whose VM dies is booted again for the steps that did not run yet,
# at most this many boots in all.
MAX_BOOTS = 3


@dataclass
class Step:
    """One test command run in a shared boot (tests/guest/batch.py)."""

    name: str
    argv: list
    timeout: int = STEP_TIMEOUT
    # The shared fixture the step runs in (tests/guest/fixtures/NAME.sh), and
    # whether the step is that fixture's set-up ("up") or tear-down ("down").
    fixture: str | None = None
    role: str | None = None
    # Make the boot's leak scan before this step (see tests/guest/batch.py).
    scan_leaks_first: bool = False
    # A self-test step built to fail (its failure is what the self-test checks).
    must_fail: bool = False

    def plan(self, own_modules: list) -> dict:
        """The step as tests/guest/batch.py reads it."""
        p = {"name": self.name, "argv": self.argv, "timeout": self.timeout, "own_modules": own_modules}
        if self.fixture:
            p["env"] = {"POLYNIC_FIXTURE": self.fixture}
        if self.role == "up":
            p["fixture_up"] = True
        elif self.role == "down":
            p["baseline"] = fixture_step(self.fixture, "up").name
        if self.scan_leaks_first:
            p["scan_leaks_first"] = True
        return p


def fixture_step(fixture: str, role: str) -> Step:
    return Step(f"fixture-{fixture}-{role}", ["bash", f"tests/guest/fixtures/{fixture}.sh", role],
                fixture=fixture, role=role)


def with_fixtures(steps: list[Step]) -> list[Step]:
    """`steps` with the set-up and tear-down of each fixture around the steps
    that share it (kept together, in order). Run again on the steps a
    crashed boot left, it sets up again whatever they still need."""
    out: list[Step] = []
    current = None
    for s in steps:
        if s.role:
            continue
        if s.fixture != current:
            if current:
                out.append(fixture_step(current, "down"))
            if s.fixture:
                out.append(fixture_step(s.fixture, "up"))
            current = s.fixture
        out.append(s)
    if current:
        out.append(fixture_step(current, "down"))
    return out


def scenario_fixture(script: Path) -> str | None:
    """The fixture a scenario declares in its header (`# fixture: NAME`)."""
    for line in script.read_text().splitlines()[:30]:
        m = re.match(r"#\s*fixture:\s*(\S+)", line)
        if m:
            return m[1]
    return None


def scenario_timeout(script: Path) -> int:
    """The step limit a scenario declares in its header (`# timeout: SECONDS`),
    else the default."""
    for line in script.read_text().splitlines()[:40]:
        m = re.match(r"#\s*timeout:\s*(\d+)", line)
        if m:
            return int(m[1])
    return STEP_TIMEOUT


@dataclass
class StepVerdict:
    ran: bool
    status: int | None = None
    seconds: float = 0.0
    reasons: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    out: Path | None = None

    @property
    def passed(self) -> bool:
        return self.ran and not self.reasons

    @property
    def outcome(self) -> str:
        """ok, skipped (exit status 77, nothing else wrong) or FAILED."""
        if not self.passed:
            return "FAILED"
        return "skipped" if self.status == 77 else "ok"

    def failures(self, name: str) -> list[str]:
        where = f" (logs: {self.out.relative_to(ROOT)})" if self.out else ""
        tail = ""
        if self.out and (self.out / "output.log").exists():
            tail = "\n" + (self.out / "output.log").read_text(errors="replace")[-1500:]
        return [f"{name}: " + "; ".join(self.reasons) + where + tail] + [
            f"{name}: kernel problem:\n{p}" for p in self.problems[:3]]


def log_message(line: str) -> str:
    """A kernel log line without its timestamp."""
    return line.split("] ", 1)[1] if line.startswith("[") and "] " in line else line


def judge_step(d: Path) -> StepVerdict:
    r = json.loads((d / "result.json").read_text())
    dmesg = (d / "dmesg.txt").read_text(errors="replace") if (d / "dmesg.txt").exists() else ""
    v = StepVerdict(ran=True, status=r["status"], seconds=r["seconds"], out=d)
    v.problems = vm.kernel_problems(dmesg)
    if r["timed_out"]:
        v.reasons.append(f"timed out after {r['seconds']} s")
    elif r["status"] not in (0, 77):
        v.reasons.append(f"guest command exited {r['status']}")
    if r["leftovers"]:
        v.reasons.append("left behind: " + ", ".join(r["leftovers"]))
    if r["fatal_taint"]:
        v.reasons.append("kernel tainted " + ", ".join(r["fatal_taint"]))
    if v.problems:
        v.reasons.append(f"{len(v.problems)} kernel problem(s) in its part of the guest log")
    return v


def run_batch(t: Tally, kdir: str, name: str, steps: list[Step]) -> dict[str, StepVerdict]:
    """Run `steps` in as few boots as possible and judge each on its own.

    Each boot is also judged as a whole (group "vm"): leaks found by the
    final kmemleak scans, and kernel problems outside every step's slice of
    the log, fail it. A boot that dies is attributed to the step that was
    running; the steps after it are run in a new boot.
    """
    verdicts: dict[str, StepVerdict] = {}
    pending = list(steps)
    for old in (ROOT / "out" / "vm").glob(f"{name}-*"):
        shutil.rmtree(old)
    boot = 0
    while pending:
        boot += 1
        out = ROOT / "out" / "vm" / f"{name}-{boot}"
        out.mkdir(parents=True, exist_ok=True)
        own = sorted(ko.stem for ko in (ROOT / "out" / "build").rglob("*.ko"))
        pending = with_fixtures(pending)
        plan = [s.plan(own) for s in pending]
        (out / "plan.json").write_text(json.dumps(plan, indent=2))
        cmd = ["env", f"POLYNIC_MODULES={ROOT / 'out' / 'build'}",
               f"POLYNIC_BIN={ROOT / 'userspace' / 'target' / 'release'}",
               "python3", "tests/guest/batch.py", str(out), str(out / "plan.json")]
        limit = BOOT_ALLOWANCE + sum(s.timeout + 60 for s in pending)
        say(f"vm: boot {boot} of {name}: {len(pending)} step(s)")
        r = vm.run(kdir, out, limit, cmd, "2G", 2, watch=step_watch(out, pending))
        say(f"    boot {boot} took {r['seconds']} s")

        judged, still, boot_reasons, boot_problems = judge_boot(out, pending, r)
        for s in pending:
            if s.name in judged:
                v = verdicts[s.name] = judged[s.name]
                note = ", as it must: the self-test checks it" if s.must_fail and not v.passed else ""
                say(f"    {s.name}: {v.outcome} ({v.seconds} s{note})")
        if boot_reasons:
            t.add("vm", failed=1, failures=[f"{name} boot {boot}: " + "; ".join(boot_reasons) +
                                            f" (logs: {out.relative_to(ROOT)})"] +
                  [f"kernel problem:\n{p}" for p in boot_problems[:3]])
        else:
            t.add("vm", passed=1)
        if still and (len(still) == len(pending) or boot >= MAX_BOOTS):
            for s in still:
                verdicts[s.name] = StepVerdict(ran=False, reasons=[f"never ran ({name} boot {boot} ended first)"])
            break
        pending = still
    return verdicts


def judge_boot(out: Path, pending: list[Step], r: dict) -> tuple[dict, list, list, list]:
    """Judges one boot of a batch from what it left in `out` and vm.run's
    result `r`: a verdict per step that ran (or was running when the boot
    ended), the steps that never started, and why the boot itself failed
    (leaks, kernel problems outside every step's slice of the log, no step
    run at all) with those problems."""
    judged: dict[str, StepVerdict] = {}
    attributed = set()
    still = []
    for s in pending:
        d = out / s.name
        if (d / "result.json").exists():
            judged[s.name] = judge_step(d)
            if (d / "dmesg.txt").exists():
                attributed.update(map(log_message, (d / "dmesg.txt").read_text(errors="replace").splitlines()))
        elif (d / "started").exists():
            # The boot ended while this step ran: it crashed the guest, hung
            # it, or could not be stopped.
            judged[s.name] = StepVerdict(ran=True, out=d, problems=r["problems"],
                                         reasons=["the VM ended while it ran: " + "; ".join(r["reasons"])])
            attributed.update(log_message(p.splitlines()[0]) for p in r["problems"])
        else:
            still.append(s)
    leaks = vm.kernel_problems((out / "kmemleak.txt").read_text(errors="replace")) \
        if (out / "kmemleak.txt").exists() else []
    stray = [p for p in r["problems"] if log_message(p.splitlines()[0]) not in attributed and p not in leaks]
    reasons = []
    if leaks:
        reasons.append(f"{len(leaks)} leaked object(s) after the steps of this boot")
    if stray:
        reasons.append(f"{len(stray)} kernel problem(s) outside every step")
    if still and len(still) == len(pending):
        reasons.append("no step ran: " + "; ".join(r["reasons"]))
    return judged, still, reasons, leaks + stray


def step_watch(out: Path, steps: list[Step]):
    """A VM watchdog: kills the guest when a step outlives its own time limit
    by more than a minute (the guest-side limit failed to stop it)."""
    first_seen: dict[str, float] = {}

    def watch() -> str | None:
        now = time.monotonic()
        for s in steps:
            d = out / s.name
            if (d / "result.json").exists() or not (d / "started").exists():
                continue
            seen = first_seen.setdefault(s.name, now)
            if now - seen > s.timeout + 90:
                return f"step {s.name} still running {round(now - seen)} s after it started"
        return None

    return watch


def count_step(t: Tally, group: str, name: str, v: StepVerdict) -> None:
    if v.outcome == "FAILED":
        t.add(group, failed=1, failures=v.failures(name))
    elif v.outcome == "skipped":
        t.add(group, skipped=1)
    else:
        t.add(group, passed=1)


SELFTEST_FIXTURES = ("polynic_selftest_kunit_fail", "polynic_selftest_oops")


def test_steps(t: Tally, kdir: str, kos: list[Path], only: str | None, skip: list[str], fixtures: Path) -> None:
    """KUnit, every scenario and the harness self-test, in one shared boot.

    Scenarios that declare a fixture run together inside it, after the
    others; the self-test comes last, after the boot's leak scan, because
    its oops ends the boot."""
    steps = []
    if "kunit" not in skip:
        steps.append(Step("kunit", ["bash", "tests/guest/kunit.sh", *map(str, kos)]))
    if "scenarios" not in skip:
        scenarios = [Step(f"scenario-{sc.stem}", ["bash", str(sc.relative_to(ROOT))], scenario_timeout(sc),
                          fixture=scenario_fixture(sc))
                     for sc in sorted((ROOT / "tests" / "scenarios").glob("*.sh")) if not only or any(o in sc.stem for o in only.split(","))]
        steps += sorted(scenarios, key=lambda s: s.fixture is not None)
    self_steps = []
    if "selftest" not in skip:
        found = {name: next(fixtures.rglob(f"{name}.ko"), None) for name in SELFTEST_FIXTURES}
        if None in found.values():
            t.add("selftest", failed=1, failures=[f"self-test fixtures not built in {fixtures}"])
        else:
            # The oops comes last: it taints the kernel and ends the batch.
            self_steps = [
                Step("selftest-kunit-fail", ["bash", "tests/guest/kunit.sh", str(found["polynic_selftest_kunit_fail"])],
                     300, scan_leaks_first=True),
                Step("selftest-clean", ["true"], 120),
                Step("selftest-oops", ["insmod", str(found["polynic_selftest_oops"])], 120, must_fail=True)]
    if not steps + self_steps:
        return
    n_sc = sum(s.name.startswith("scenario-") for s in steps)
    say(f"vm: KUnit ({len(kos)} module(s)), {n_sc} scenario(s) and {len(self_steps)} self-test step(s) "
        "in a shared boot")
    verdicts = run_batch(t, kdir, "tests", steps + self_steps)
    for name, v in verdicts.items():
        if name == "kunit":
            suites = count_kunit(v.out / "kunit") if v.out else {}
            for suite in suites.values():
                t.add("kunit", suite.passed, suite.failed, suite.skipped,
                      [f + kunit_evidence(v.out, f) for f in suite.failures])
            if not suites:
                t.add("kunit", failed=1, failures=["no KUnit results came back from the VM"])
            # Loading and unloading every module must also leave a clean log.
            count_step(t, "kunit-vm", "kunit", v)
        elif name.startswith("scenario-"):
            count_step(t, "scenarios", name.removeprefix("scenario-"), v)
        elif name.startswith("fixture-"):
            count_step(t, "fixtures", name.removeprefix("fixture-"), v)
    if self_steps:
        judge_selftest(t, verdicts)


def judge_selftest(t: Tally, v: dict[str, StepVerdict]) -> None:
    """The harness must see a failing case and an oops as failures.

    The self-test steps run in the shared boot through the same code paths
    the real steps go through (batch runner, per-step log slices, the KTAP
    counter), on fixtures built to fail, and pass only if each failure was
    counted against the step that caused it and no other.
    """
    kf = v.get("selftest-kunit-fail")
    got = count_kunit(kf.out / "kunit", {"polynic_selftest_kunit_fail"}).get(
        "polynic_selftest_kunit_fail") if kf and kf.out else None
    if got and got.failed == 1 and got.passed == 1:
        t.add("selftest", passed=1)
    else:
        t.add("selftest", failed=1, failures=[f"failing fixture case not counted as exactly 1 failed + 1 passed: {got}"])

    o = v.get("selftest-oops")
    if o and not o.passed and any("Oops" in p or "BUG:" in p for p in o.problems):
        t.add("selftest", passed=1)
    else:
        t.add("selftest", failed=1, failures=[
            f"guest oops not detected in its step: {o.reasons if o else 'never ran'}, {len(o.problems) if o else 0} problems"])

    c = v.get("selftest-clean")
    if c and c.passed:
        t.add("selftest", passed=1)
    else:
        t.add("selftest", failed=1, failures=["a clean step was judged failed: " + "; ".join(c.reasons if c else ["never ran"])]
              + [f"kernel problem:\n{p}" for p in (c.problems[:3] if c else [])])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kdir", required=True)
    ap.add_argument("--modules", required=True, type=Path, help="directory of built polynic modules")
    ap.add_argument("--kunit-modules", required=True, type=Path, help="directory of built KUnit-only modules")
    ap.add_argument("--fixtures", required=True, type=Path, help="directory of built self-test fixtures")
    ap.add_argument("--only", help="run only scenarios whose name contains one of these (comma-separated)")
    ap.add_argument("--skip", action="append", default=[], choices=["host", "kunit", "scenarios", "selftest"])
    args = ap.parse_args()

    started = time.monotonic()
    t = Tally()
    kos = sorted(args.modules.rglob("*.ko")) + sorted(args.kunit_modules.rglob("*.ko"))
    if "host" not in args.skip:
        host_tests(t)
    test_steps(t, args.kdir, kos, args.only, args.skip, args.fixtures)

    print()
    print(f"{'group':<12} {'passed':>7} {'failed':>7} {'skipped':>8}")
    for name, (p, f, s) in t.groups.items():
        print(f"{name:<12} {p:>7} {f:>7} {s:>8}")
    for f in t.failures:
        print(f"\nFAILED {f}")
    passed, failed, skipped = t.totals()
    (ROOT / "out").mkdir(exist_ok=True)
    (ROOT / "out" / "test-summary.json").write_text(json.dumps(
        {"groups": t.groups, "failures": t.failures, "seconds": round(time.monotonic() - started)}, indent=2))
    print(f"\nfinished in {round(time.monotonic() - started)} s")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
