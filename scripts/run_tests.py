#!/usr/bin/env python3
"""polynic test runner: every test, one verdict.

Runs, in order: the host tests of userspace/ (cargo test, clippy), the KUnit
suites in the VM (built-in suites such as the kernel crate's doctests, and the
suites of every polynic module, run at load), each in-VM scenario under
tests/scenarios/ in its own VM, and the harness self-test, which proves that a
failing KUnit case and a guest oops each turn the run red.

Ends with one line `N passed, N failed, N skipped` counting host tests, KUnit
cases, scenarios and self-test checks; exits non-zero on any failure.
"""

import argparse
import json
import os
import re
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


def vm_run(kdir: str, name: str, command: list[str], timeout: int, modules: Path) -> tuple[dict, Path]:
    out = ROOT / "out" / "vm" / name
    out.mkdir(parents=True, exist_ok=True)
    for f in (out / "kunit").glob("*.ktap") if (out / "kunit").exists() else []:
        f.unlink()
    cmd = ["env", f"POLYNIC_MODULES={modules}", f"POLYNIC_BIN={ROOT / 'userspace' / 'target' / 'release'}", *command]
    r = vm.run(kdir, out, timeout, cmd, "2G", 2)
    return r, out


def vm_failures(r: dict, out: Path) -> list[str]:
    if r["passed"]:
        return []
    msg = "; ".join(r["reasons"]) + f" (logs: {out.relative_to(ROOT)})"
    tail = (out / "output.log").read_text(errors="replace")[-1500:] if (out / "output.log").exists() else ""
    return [msg + ("\n" + tail if tail else "")] + [f"kernel problem:\n{p}" for p in r["problems"][:3]]


def kunit_tests(t: Tally, kdir: str, modules: Path, kos: list[Path], timeout: int) -> None:
    say(f"vm: KUnit suites (built-in, and {len(kos)} module(s) loaded)")
    r, out = vm_run(kdir, "kunit", ["bash", "tests/guest/kunit.sh", *map(str, kos)], timeout, modules)
    say(f"vm: KUnit boot took {r['seconds']} s")
    suites = count_kunit(out / "kunit")
    for s in suites.values():
        t.add("kunit", s.passed, s.failed, s.skipped, s.failures)
    if not suites:
        t.add("kunit", failed=1, failures=["no KUnit results came back from the VM"])
    # A clean KUnit run needs a clean kernel log and a zero exit status.
    if r["passed"]:
        t.add("kunit-vm", passed=1)
    else:
        t.add("kunit-vm", failed=1, failures=vm_failures(r, out))


def scenarios(t: Tally, kdir: str, modules: Path, only: str | None, timeout: int) -> None:
    for sc in sorted((ROOT / "tests" / "scenarios").glob("*.sh")):
        if only and only not in sc.stem:
            continue
        say(f"vm: scenario {sc.stem}")
        # Scenarios find any built module (polynic's and the test-only ones).
        r, out = vm_run(kdir, f"scenario-{sc.stem}", ["bash", str(sc.relative_to(ROOT))], timeout, ROOT / "out" / "build")
        if r["status"] == 77 and not r["problems"]:
            t.add("scenarios", skipped=1)
            say(f"    skipped ({r['seconds']} s)")
        elif r["passed"]:
            t.add("scenarios", passed=1)
            say(f"    ok ({r['seconds']} s)")
        else:
            t.add("scenarios", failed=1, failures=[f"{sc.stem}: " + f for f in vm_failures(r, out)])
            say(f"    FAILED ({r['seconds']} s)")


def selftest(t: Tally, kdir: str, fixtures: Path, timeout: int) -> None:
    """The harness must see a failing case and an oops as failures.

    Each check runs the same code paths the real suites go through (the VM
    runner and the KTAP counter) on a fixture built to fail, and passes only
    if that failure was counted.
    """
    kunit_fail = next(fixtures.rglob("polynic_selftest_kunit_fail.ko"), None)
    oops = next(fixtures.rglob("polynic_selftest_oops.ko"), None)
    if kunit_fail is None or oops is None:
        t.add("selftest", failed=1, failures=[f"self-test fixtures not built in {fixtures}"])
        return

    say("selftest: a failing KUnit case must be counted as failed")
    r, out = vm_run(kdir, "selftest-kunit", ["bash", "tests/guest/kunit.sh", str(kunit_fail)], timeout, fixtures)
    got = count_kunit(out / "kunit", {"polynic_selftest_kunit_fail"}).get("polynic_selftest_kunit_fail")
    if got and got.failed == 1 and got.passed == 1:
        t.add("selftest", passed=1)
    else:
        t.add("selftest", failed=1, failures=[f"failing fixture case not counted as exactly 1 failed + 1 passed: {got}"])

    say("selftest: an oops in the guest must fail the run")
    r, out = vm_run(kdir, "selftest-oops", ["insmod", str(oops)], timeout, fixtures)
    if not r["passed"] and any("Oops" in p or "BUG:" in p for p in r["problems"]):
        t.add("selftest", passed=1)
    else:
        t.add("selftest", failed=1, failures=[f"guest oops not detected: {r['reasons']}, {len(r['problems'])} problems"])

    say("selftest: a clean guest command must pass")
    r, out = vm_run(kdir, "selftest-clean", ["true"], timeout, fixtures)
    if r["passed"]:
        t.add("selftest", passed=1)
    else:
        t.add("selftest", failed=1, failures=["a clean run was judged failed: " + "; ".join(r["reasons"])]
              + [f"kernel problem:\n{p}" for p in r["problems"][:3]])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kdir", required=True)
    ap.add_argument("--modules", required=True, type=Path, help="directory of built polynic modules")
    ap.add_argument("--kunit-modules", required=True, type=Path, help="directory of built KUnit-only modules")
    ap.add_argument("--fixtures", required=True, type=Path, help="directory of built self-test fixtures")
    ap.add_argument("--only", help="run only scenarios whose name contains this")
    ap.add_argument("--skip", action="append", default=[], choices=["host", "kunit", "scenarios", "selftest"])
    ap.add_argument("--timeout", type=int, default=600, help="per-VM time limit in seconds")
    args = ap.parse_args()

    started = time.monotonic()
    t = Tally()
    kos = sorted(args.modules.rglob("*.ko")) + sorted(args.kunit_modules.rglob("*.ko"))
    if "host" not in args.skip:
        host_tests(t)
    if "kunit" not in args.skip:
        kunit_tests(t, args.kdir, args.modules, kos, args.timeout)
    if "scenarios" not in args.skip:
        scenarios(t, args.kdir, args.modules, args.only, args.timeout)
    if "selftest" not in args.skip:
        selftest(t, args.kdir, args.fixtures, args.timeout)

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
