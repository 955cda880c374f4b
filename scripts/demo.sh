#!/usr/bin/env bash
# `make demo`: boot the test kernel and run the Ethernet Block Device demo
# (tests/guest/demo.sh): ebd-server on a sparse file in a server namespace,
# /dev/ebd0 over a veth pair, a filesystem, files copied and verified,
# throughput and counters printed.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$POLYNIC_ROOT"
"$POLYNIC_ROOT/scripts/setup.sh"
kdir=$("$POLYNIC_ROOT/scripts/kernel.sh")
"$POLYNIC_ROOT/scripts/modules.sh" "$kdir" >/dev/null
build_userspace
out="$POLYNIC_ROOT/out/vm/demo"
log "booting the test kernel under virtme-ng (TCG) and running tests/guest/demo.sh"
python3 "$POLYNIC_ROOT/scripts/vm.py" --kdir "$kdir" --out "$out" --timeout 600 -- \
  env POLYNIC_MODULES="$POLYNIC_ROOT/out/build/modules" POLYNIC_BIN="$POLYNIC_ROOT/userspace/target/release" \
  bash tests/guest/demo.sh
rc=$?
cat "$out/output.log"
exit $rc
