#!/bin/bash
# Guest side of `make demo`.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "== guest kernel: $(uname -r), $(nproc) vCPU, $(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo) MiB"
for ko in $(find "$POLYNIC_MODULES" -name '*.ko' | sort); do
  name=$(basename "$ko" .ko)
  echo "== insmod $name"
  dmesg -C
  insmod "$ko" || fail "insmod $name"
  dmesg | sed 's/^/   dmesg: /'
  for r in /sys/kernel/debug/kunit/*/results; do
    grep -q "# module: $name" "$r" 2>/dev/null || continue
    echo "   KUnit suite $(basename "$(dirname "$r")"): $(grep -c '^ *ok ' "$r") ok, $(grep -c '^ *not ok ' "$r") not ok"
  done
  echo "== rmmod $name"
  rmmod "$name" || fail "rmmod $name"
done
echo "== done"
