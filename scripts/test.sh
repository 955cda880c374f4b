#!/usr/bin/env bash
# `make test`: set up, build (or reuse) the test kernel and the modules, then
# run every test (scripts/run_tests.py) and end with `N passed, N failed`.
# Extra arguments go to run_tests.py (for example --only NAME).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$POLYNIC_ROOT"
"$POLYNIC_ROOT/scripts/setup.sh"
kdir=$("$POLYNIC_ROOT/scripts/kernel.sh")
log "kernel: $kdir"
# The user-space tools the scenarios run in the guest.
build_userspace
# The polynic modules, then the test-only trees.
for tree in . tests/kunit tests/blk tests/misc tests/selftest/fixtures; do
  "$POLYNIC_ROOT/scripts/modules.sh" "$kdir" "$tree" >/dev/null
done
exec python3 "$POLYNIC_ROOT/scripts/run_tests.py" --kdir "$kdir" \
  --modules "$POLYNIC_ROOT/out/build/modules" \
  --kunit-modules "$POLYNIC_ROOT/out/build/tests/kunit" \
  --fixtures "$POLYNIC_ROOT/out/build/tests/selftest/fixtures" "$@"
