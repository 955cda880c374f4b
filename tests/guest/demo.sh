#!/bin/bash
# Guest side of `make demo`.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "== guest kernel: $(uname -r), $(nproc) vCPU, $(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo) MiB"
for ko in $(find "$POLYNIC_MODULES" -name '*.ko' | sort); do
  name=$(basename "$ko" .ko)
  echo "== insmod $name"
  dmesg -C
  insmod "$ko" || fail "insmod $name"
  log=$(dmesg)
  # The module's own messages, without the KTAP lines of its suites.
  grep -v -E '\] +(KTAP|#|ok |not ok |1\.\.)' <<<"$log" | sed 's/^/   dmesg: /'
  for suite in $(sed -n 's/.*# Subtest: \([A-Za-z0-9_]*\)$/\1/p' <<<"$log"); do
    r=/sys/kernel/debug/kunit/$suite/results
    [[ -e $r ]] || continue
    echo "   KUnit suite $suite: $(grep -c '^ \+ok ' "$r") passed, $(grep -c '^ \+not ok ' "$r") failed"
  done
  echo "== rmmod $name"
  rmmod "$name" || fail "rmmod $name"
done
echo "== done"
