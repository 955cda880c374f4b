# shellcheck shell=bash
# Helpers for guest-side scenarios. Source from a scenario script; the VM
# runner sets POLYNIC_OUT, and test.sh sets POLYNIC_MODULES to the directory
# holding the built .ko files.
set -uo pipefail

# Path of the built module NAME (without .ko).
module_path() {
  : "${POLYNIC_MODULES:?POLYNIC_MODULES must name the built modules directory}"
  local p
  p=$(find "$POLYNIC_MODULES" -name "$1.ko" -print -quit)
  [[ -n $p ]] || { echo "module $1.ko not built in $POLYNIC_MODULES" >&2; return 1; }
  echo "$p"
}

# Save the KUnit results of every suite now, before unloading a module
# removes its suites. Bash built-ins only: starting a process costs seconds
# in the TCG guest, and there is one file per suite.
save_kunit() {
  local r suite line
  mkdir -p "$POLYNIC_OUT/kunit"
  for r in /sys/kernel/debug/kunit/*/results; do
    [[ -e $r ]] || continue
    suite=${r%/results}
    suite=${suite##*/}
    while IFS= read -r line || [[ -n $line ]]; do
      printf '%s\n' "$line"
    done <"$r" >"$POLYNIC_OUT/kunit/$suite.ktap"
  done
  return 0
}

# Fail the scenario with a message.
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# log_mark: a mark in the kernel log; log_since MARK prints what came after
# it. Scenarios share a boot, so none may clear the log (dmesg -C) that the
# runner slices per scenario.
log_mark() { dmesg | wc -l; }
log_since() { dmesg | tail -n +"$(($1 + 1))"; }
