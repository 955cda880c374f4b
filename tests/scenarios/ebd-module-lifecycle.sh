#!/bin/bash
# The ebd module loads, announces its wire protocol version, and unloads
# cleanly, three times over (no leak or refcount drift across reloads).
source "${BASH_SOURCE[0]%/*}/../guest/lib.sh"
ko=$(module_path ebd) || exit 1
for round in 1 2 3; do
  mark=$(log_mark)
  insmod "$ko" || fail "insmod round $round"
  log_since "$mark" | grep -q "EBD wire protocol v2 loaded" || fail "no load message in round $round"
  grep -q '^ebd ' /proc/modules || fail "ebd not listed after load"
  rmmod ebd || fail "rmmod round $round"
  ! grep -q '^ebd ' /proc/modules || fail "ebd still listed after rmmod"
done
echo "ebd loaded and unloaded 3 times"
