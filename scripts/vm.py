#!/usr/bin/env python3
"""Boot the polynic test kernel under virtme-ng and run one guest command.

    vm.py --kdir KDIR --out DIR [--timeout S] -- COMMAND [ARG...]

The guest runs tests/guest/wrap.sh, which runs COMMAND, then saves the KUnit
results, a kmemleak scan and the kernel log into DIR. The host side enforces
the time limit (the whole process group is killed, so nothing can hang), then
reads the kernel log and the console for oopses, BUGs, KASAN and lockdep
reports, hung tasks, leaks and warnings. Any of those fails the run, whatever
the command said. The verdict is written to DIR/result.json and the exit
status is 0 only for a clean pass.
"""

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Kernel log lines that fail a run. Each is a bug class the tests must not
# hide: memory errors, lock misuse, sleeping in atomic context, hangs, leaks.
PROBLEM_PATTERNS = [
    r"\bOops\b",
    r"\bBUG:",
    r"kernel BUG at",
    r"general protection fault",
    r"KASAN:",
    r"UBSAN:",
    r"WARNING:",
    r"possible circular locking dependency",
    r"possible recursive locking",
    r"inconsistent lock state",
    r"lock held when returning to user space",
    r"suspicious RCU usage",
    r"INFO: task .* blocked for more than",
    r"INFO: rcu_.* detected stalls",
    r"watchdog: BUG: soft lockup",
    r"Kernel panic",
    r"unreferenced object 0x",
    r"rust_panic|panicked at",
    r"Objects remaining .* on __kmem_cache_shutdown",
]
PROBLEM_RE = re.compile("|".join(f"(?:{p})" for p in PROBLEM_PATTERNS))


def kernel_problems(text: str) -> list[str]:
    """Every kernel-log line that reports a bug, with a little context."""
    lines = text.splitlines()
    found = []
    for i, line in enumerate(lines):
        if PROBLEM_RE.search(line):
            found.append("\n".join(lines[i : i + 12]))
    return found


BOOT_ATTEMPTS = 3

# The emulated CPU. QEMU's TCG runs `rep movsb` one byte per iteration, and
# both the kernel (with ERMS/FSRM) and glibc (with ERMS, from 8 KiB up) pick
# that instruction for large copies, so every big copy in the guest cost ~8x
# what it would on hardware, where `rep movsb` is the fastest copy. Without
# the two flags both fall back to the copies they use on CPUs without fast
# string moves (8-byte moves, vector loops), which TCG runs at speeds that
# keep in proportion to the rest of the guest. POLYNIC_QEMU_CPU overrides it.
QEMU_CPU = os.environ.get("POLYNIC_QEMU_CPU", "max,-erms,-fsrm")

# POLYNIC_VM_HOST_CPUS=N (a decimal, e.g. 0.8) lets the whole VM use at most
# N of the host's CPUs, through a CPU cgroup with a short period (10 ms, so
# the guest is slowed evenly rather than stopped in long spells): a slower
# machine of this kind, on purpose, for the benchmark's slow runs.
HOST_CPUS = os.environ.get("POLYNIC_VM_HOST_CPUS", "")
CGROUP_PERIOD_US = 10_000


class CpuLimit:
    """A CPU cgroup that holds the VM to `cpus` host CPUs (cgroup v2's
    cpu.max, or v1's CFS quota). Processes join it with `join`."""

    def __init__(self, cpus: float):
        if not cpus > 0:
            raise SystemExit(f"POLYNIC_VM_HOST_CPUS={cpus}: must be above 0")
        quota = max(1000, int(cpus * CGROUP_PERIOD_US))
        name = f"polynic-vm-{os.getpid()}"
        v2 = Path("/sys/fs/cgroup")
        v1 = Path("/sys/fs/cgroup/cpu")
        if (v2 / "cgroup.controllers").exists() and "cpu" in (v2 / "cgroup.controllers").read_text().split():
            (v2 / "cgroup.subtree_control").write_text("+cpu")
            self.path = v2 / name
            self.path.mkdir(exist_ok=True)
            (self.path / "cpu.max").write_text(f"{quota} {CGROUP_PERIOD_US}")
        elif (v1 / "cpu.cfs_quota_us").exists():
            self.path = v1 / name
            self.path.mkdir(exist_ok=True)
            (self.path / "cpu.cfs_period_us").write_text(str(CGROUP_PERIOD_US))
            (self.path / "cpu.cfs_quota_us").write_text(str(quota))
        else:
            raise SystemExit("POLYNIC_VM_HOST_CPUS is set, but this host has no CPU cgroup controller to limit the VM")

    def join(self) -> None:
        """Moves the calling process into the cgroup (run in the child)."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def remove(self) -> None:
        try:
            self.path.rmdir()
        except OSError:
            pass


def run(kdir: str, out: Path, timeout: int, command: list[str], memory: str, cpus: int, watch=None) -> dict:
    """Run `command` in a VM. A guest whose kernel crashes while booting,
    before the test command starts, is booted again, up to BOOT_ATTEMPTS
    times in all: under TCG such crashes come from the emulator, not from the
    code under test (seen: an int3 oops in sched_clock_cpu right after
    "sched_clock: Marking stable", the static-key text patch racing the other
    vCPU; about one boot in three of the bench kernel, rarely with the debug
    kernel). Retries are recorded in the result and printed; a crash on the
    last attempt fails the run, and a crash after the command started is
    never retried."""
    retried = []
    for attempt in range(1, BOOT_ATTEMPTS + 1):
        r = run_once(kdir, out, timeout, command, memory, cpus, watch)
        boot_crash = not r["passed"] and not (out / "started").exists() and not r["timed_out"]
        if not boot_crash or attempt == BOOT_ATTEMPTS:
            break
        first = r["problems"][:1]
        retried.append(first)
        print(f"vm: guest crashed while booting, before the test started (attempt {attempt}); booting again: {first}",
              file=sys.stderr, flush=True)
    if retried:
        r["boot_crash_retried"] = retried
        (out / "result.json").write_text(json.dumps(r, indent=2))
    return r


def run_once(kdir: str, out: Path, timeout: int, command: list[str], memory: str, cpus: int, watch=None) -> dict:
    """One boot. `watch`, if given, is called every few seconds while the
    guest runs; a non-empty string it returns is why the guest is stuck, and
    the VM is killed with that reason."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("started", "status", "batch.json", "dmesg.txt", "kmemleak.txt", "console.log", "output.log", "result.json"):
        (out / stale).unlink(missing_ok=True)
    guest = " ".join(
        shlex.quote(a) for a in ["bash", str(ROOT / "tests/guest/wrap.sh"), str(out), *command]
    )
    vng = [
        "vng", "--run", kdir, "--disable-kvm", "--verbose",
        "--cpus", str(cpus), "--memory", memory,
        "--rwdir", str(out), "--cwd", str(ROOT),
        f"--qemu-opts=-cpu {QEMU_CPU}",
        # panic_on_warn is left off so that the log shows every problem;
        # the host fails the run on any of them.
        # A large log buffer keeps every record of a long batch of tests.
        "--append", "hung_task_timeout_secs=60 kmemleak=on no5lvl log_buf_len=16M",
        "--exec", guest,
    ]
    started = time.monotonic()
    timed_out = False
    stuck = None
    limit = CpuLimit(float(HOST_CPUS)) if HOST_CPUS else None
    with open(out / "console.log", "wb") as console:
        proc = subprocess.Popen(vng, stdout=console, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=limit.join if limit else None)
        while True:
            try:
                proc.wait(timeout=5)
                break
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() - started > timeout:
                timed_out = True
            elif watch is not None:
                stuck = watch()
            if timed_out or stuck:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                break
    elapsed = time.monotonic() - started
    if limit:
        limit.remove()

    status_file = out / "status"
    status = int(status_file.read_text().strip()) if status_file.exists() else None
    dmesg = (out / "dmesg.txt").read_text(errors="replace") if (out / "dmesg.txt").exists() else ""
    console = (out / "console.log").read_text(errors="replace")
    leaks = (out / "kmemleak.txt").read_text(errors="replace") if (out / "kmemleak.txt").exists() else ""
    problems = kernel_problems(dmesg or console) + kernel_problems(leaks)

    reasons = []
    if timed_out:
        reasons.append(f"timed out after {timeout} s")
    elif stuck:
        reasons.append(f"killed: {stuck}")
    elif status is None:
        reasons.append("guest never finished (no exit status): crashed or panicked")
    elif status != 0:
        reasons.append(f"guest command exited {status}")
    if problems:
        reasons.append(f"{len(problems)} kernel problem(s) in the guest log")
    result = {
        "command": command,
        "status": status,
        "timed_out": timed_out or bool(stuck),
        "seconds": round(elapsed, 1),
        "problems": problems,
        "passed": not reasons,
        "reasons": reasons,
    }
    (out / "result.json").write_text(json.dumps(result, indent=2))
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kdir", required=True, help="kernel build directory")
    ap.add_argument("--out", required=True, type=Path, help="host directory the guest writes results to")
    ap.add_argument("--timeout", type=int, default=600, help="seconds before the VM is killed")
    ap.add_argument("--memory", default="2G")
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("command", nargs="+", help="guest command")
    args = ap.parse_args()
    r = run(args.kdir, args.out.resolve(), args.timeout, args.command, args.memory, args.cpus)
    for p in r["problems"]:
        print(f"--- kernel problem ---\n{p}", file=sys.stderr)
    if not r["passed"]:
        print(f"vm: FAILED ({'; '.join(r['reasons'])}); logs in {args.out}", file=sys.stderr)
    return 0 if r["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
