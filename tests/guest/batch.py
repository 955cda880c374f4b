#!/usr/bin/env python3
"""Guest side of a shared VM boot: batch.py OUT PLAN.json

Booting the test kernel under TCG costs minutes, so the host runs many test
steps (the KUnit load, each scenario) in one boot. This runner keeps the
steps apart so that each one is judged on its own:

- each step runs in its own session (process group) with a time limit, and
  whatever it left running is killed afterwards;
- its kernel log is the slice of /dev/kmsg it produced (read by sequence
  number, so a step that clears the log cannot hide lines from the others);
- the modules, network namespaces, links and mounts it left behind are
  removed and reported: a step must leave the system as it found it;
- a new "died" or "soft lockup" taint stops the batch: later steps would run
  on a broken kernel. The host boots again for the steps that did not run.

Steps may share a fixture (a set-up that costs more than the test using it,
such as EBD's namespace, link and module): a step marked "fixture_up" keeps
what it creates, the steps after it find it there (and must leave it as
they found it), and a step with "baseline": UP_STEP is judged against the
system as it was before UP_STEP, so the fixture's tear-down must remove it
all. A step marked "scan_leaks_first" makes the boot's kmemleak scan (into
OUT/kmemleak.txt) before it runs: steps built to break the kernel (the
harness self-test) come after the scan and cannot hide or fake a leak.

PLAN.json is a list of {"name", "argv", "timeout"} with optional "env",
"fixture_up", "baseline" and "scan_leaks_first". For each step, OUT/NAME/
receives `started`, `output.log`, `dmesg.txt`, `kunit/*.ktap` (from the
step's own save_kunit) and `result.json`. OUT/batch.json says how the batch
ended.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# Taint bits after which the kernel is not fit to run further tests:
# D (a task died in an oops) and L (soft lockup).
FATAL_TAINTS = {7: "D (oops)", 14: "L (soft lockup)"}
# How long a killed step may take to go away before the batch gives up on it.
REAP_SECONDS = 30


def kmsg_records(after: int) -> tuple[list[str], int]:
    """Kernel log records with a sequence number above `after`, and the last
    sequence number read. /dev/kmsg keeps every record (a syslog clear does
    not remove them), so slices do not depend on what steps did to dmesg."""
    lines, last = [], after
    fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    try:
        while True:
            try:
                rec = os.read(fd, 8192)
            except BlockingIOError:
                break
            except BrokenPipeError:
                # Records were overwritten while reading (ring wrapped):
                # reading again continues from the oldest one still there.
                continue
            head, _, body = rec.decode(errors="replace").partition(";")
            fields = head.split(",")
            seq = int(fields[1])
            if seq <= after:
                continue
            last = seq
            usec = int(fields[2])
            msg = body.split("\n", 1)[0]
            lines.append(f"[{usec // 1000000:5d}.{usec % 1000000:06d}] {msg}")
    finally:
        os.close(fd)
    return lines, last


def taint() -> int:
    return int(Path("/proc/sys/kernel/tainted").read_text())


def loaded_modules() -> set[str]:
    p = Path("/proc/modules")
    return {line.split()[0] for line in p.read_text().splitlines()} if p.exists() else set()


def netns() -> set[str]:
    # What `ip netns list` shows, without starting a process (each costs
    # seconds in the TCG guest).
    d = Path("/run/netns")
    return set(os.listdir(d)) if d.is_dir() else set()


def links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


# Mounts that set-up helpers make once and that hold nothing of a test's
# (configfs, debugfs, the namespace bind mounts `ip netns` manages).
SYSTEM_FS = {"configfs", "debugfs", "tracefs", "nsfs"}


def mounts() -> list[str]:
    out = []
    for line in Path("/proc/mounts").read_text().splitlines():
        _, target, fstype = line.split()[:3]
        if fstype not in SYSTEM_FS and not target.startswith("/run/netns"):
            out.append(target)
    return out


def snapshot() -> dict:
    return {"modules": loaded_modules(), "netns": netns(), "links": links(), "mounts": mounts()}


def restore(before: dict, own: set[str]) -> list[str]:
    """Remove what the step left behind; returns what that was."""
    left = []
    for m in reversed([m for m in mounts() if m not in before["mounts"]]):
        left.append(f"mount {m}")
        subprocess.run(["umount", "-l", m], capture_output=True)
    for ns in sorted(netns() - before["netns"]):
        left.append(f"network namespace {ns}")
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    for link in sorted(links() - before["links"]):
        left.append(f"link {link}")
        subprocess.run(["ip", "link", "del", link], capture_output=True)
    # Modules last: a namespace or link may hold a reference on one. Only
    # the project's own count: the kernel loads others on demand (sch_netem
    # for tc), and those may stay.
    def ours_loaded() -> list[str]:
        return sorted((loaded_modules() - before["modules"]) & own)

    left.extend(f"module {m}" for m in ours_loaded())
    for _ in range(3):
        for m in ours_loaded():
            subprocess.run(["rmmod", m], capture_output=True)
    left.extend(f"module {m} could not be unloaded" for m in ours_loaded())
    return left


def scan_leaks(out: Path) -> None:
    """The boot's kmemleak report so far, into OUT/kmemleak.txt (wrap.sh
    then makes no scan of its own). kmemleak reports an object only once it
    has stayed unreferenced across scans older than its minimum age (5 s)."""
    ctl = Path("/sys/kernel/debug/kmemleak")
    if not ctl.exists():
        return
    time.sleep(6)
    for _ in range(2):
        ctl.write_text("scan")
    (out / "kmemleak.txt").write_text(ctl.read_text())


def kill_session(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_step(out: Path, step: dict, env: dict, seq: int, baselines: dict) -> tuple[dict, int]:
    d = out / step["name"]
    d.mkdir(parents=True, exist_ok=True)
    (d / "kunit").mkdir(exist_ok=True)
    before = baselines[step["name"]] = snapshot()
    taint_before = taint()
    (d / "started").write_text(f"{time.time()}\n")
    started = time.monotonic()
    timed_out = False
    argv, trace = list(step["argv"]), None
    step_env = {**env, **step.get("env", {}), "POLYNIC_OUT": str(d)}
    if argv[0] == "bash" and len(argv) > 1 and not argv[1].startswith("-"):
        # Bash script steps (not `bash -c`) are traced into trace.log, each command with the time
        # it started (built-ins only, so tracing costs no process): where a
        # step's time goes is then a read away.
        # (bash ignores PS4 from the environment when run as root, so it is
        # set in the shell that then runs the script.)
        trace = open(d / "trace.log", "wb")
        argv[1:1] = ["-c", 'PS4="+\\${EPOCHREALTIME} \\${BASH_SOURCE[0]:-}:\\${LINENO}: "; set -x; source "$0" "$@"']
        step_env.update(BASH_XTRACEFD="9")
    with open(d / "output.log", "wb") as log:
        if trace is not None:
            os.dup2(trace.fileno(), 9, inheritable=True)
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=step_env, start_new_session=True, pass_fds=(9,) if trace else ())
        if trace is not None:
            os.close(9)
            trace.close()
        try:
            status = proc.wait(timeout=step["timeout"])
        except subprocess.TimeoutExpired:
            timed_out = True
            kill_session(proc.pid)
            try:
                status = proc.wait(timeout=REAP_SECONDS)
            except subprocess.TimeoutExpired:
                status = None
    seconds = time.monotonic() - started
    # Background processes the step started (servers, relays) share its
    # process group.
    kill_session(proc.pid)
    time.sleep(0.2)
    if step.get("fixture_up"):
        leftovers = []  # the fixture, kept for the steps that share it
    else:
        # A fixture's tear-down is judged against the system before its set-up;
        # if that set-up ran in an earlier boot, the system is as it booted.
        base = baselines.get(step["baseline"], baselines["boot"]) if step.get("baseline") else before
        leftovers = restore(base, set(step.get("own_modules", [])))
    lines, seq = kmsg_records(seq)
    (d / "dmesg.txt").write_text("\n".join(lines) + "\n")
    new_taint = taint() & ~taint_before
    fatal = [name for bit, name in FATAL_TAINTS.items() if new_taint & (1 << bit)]
    result = {
        "name": step["name"],
        "status": status,
        "timed_out": timed_out,
        "seconds": round(seconds, 1),
        "leftovers": leftovers,
        "new_taint": new_taint,
        "fatal_taint": fatal,
    }
    (d / "result.json").write_text(json.dumps(result, indent=2))
    return result, seq


def main() -> int:
    out, plan = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text())
    env = dict(os.environ)
    _, seq = kmsg_records(-1)
    ended = "completed"
    baselines = {"boot": snapshot()}
    for step in plan:
        if step.get("scan_leaks_first") and not (out / "kmemleak.txt").exists():
            print("batch: kmemleak scan", flush=True)
            scan_leaks(out)
        print(f"batch: {step['name']}", flush=True)
        r, seq = run_step(out, step, env, seq, baselines)
        print(f"batch: {step['name']} -> status {r['status']} in {r['seconds']} s", flush=True)
        if r["fatal_taint"]:
            ended = f"stopped after {step['name']}: kernel tainted {', '.join(r['fatal_taint'])}"
            break
        if r["status"] is None:
            ended = f"stopped after {step['name']}: it could not be killed after its time limit"
            break
    (out / "batch.json").write_text(json.dumps({"ended": ended}, indent=2))
    print(f"batch: {ended}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
