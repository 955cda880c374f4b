#!/bin/bash
# Runs inside the test VM: wrap.sh OUT COMMAND [ARG...]
#
# Marks the leaks that boot left behind as seen, runs COMMAND with its output
# in OUT/output.log, then saves its exit status, every KUnit suite's results,
# a fresh kmemleak scan and the kernel log into OUT for the host to judge.
out=$1
shift
# Tells the host the guest booted and reached the test command.
: >"$out/started"
export POLYNIC_OUT=$out
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
mkdir -p "$out/kunit"
mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug
leakctl=/sys/kernel/debug/kmemleak
if [[ -w $leakctl ]]; then
  echo scan >"$leakctl" 2>/dev/null
  echo clear >"$leakctl" 2>/dev/null
  # No automatic scans: each takes a vCPU for tens of seconds under KASAN
  # every 10 minutes. The scans that judge leaks are explicit (below, and
  # in tests/guest/batch.py).
  echo scan=off >"$leakctl" 2>/dev/null
fi
# The console keeps the kernel log too, so a guest that hangs or panics
# before dmesg.txt is written still shows why in console.log.

"$@" >"$out/output.log" 2>&1
status=$?

# Module suites vanish when their module is unloaded, so commands that unload
# modules save their own results first (save_kunit in tests/guest/lib.sh).
# A batch's steps did (tests/guest/batch.py); reading every suite's results
# from debugfs takes tens of seconds under TCG, so it is not done twice.
[[ -e $out/batch.json ]] || save_kunit
# A batch may have scanned already, before steps built to break the kernel
# (tests/guest/batch.py, scan_leaks_first).
if [[ -w $leakctl && ! -e $out/kmemleak.txt ]]; then
  # kmemleak reports an object only once it has stayed unreferenced across
  # scans older than its minimum age (5 s).
  sleep 6
  echo scan >"$leakctl"
  echo scan >"$leakctl"
  cat "$leakctl" >"$out/kmemleak.txt"
fi
dmesg >"$out/dmesg.txt"
echo "$status" >"$out/status"
sync
exit "$status"
