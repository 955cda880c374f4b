#!/usr/bin/env bash
# `make demo`: boot the test kernel, load the polynic modules and show what
# they did. Grows into the Ethernet Block Device demo.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$POLYNIC_ROOT"
"$POLYNIC_ROOT/scripts/setup.sh"
kdir=$("$POLYNIC_ROOT/scripts/kernel.sh")
"$POLYNIC_ROOT/scripts/modules.sh" "$kdir" >/dev/null
out="$POLYNIC_ROOT/out/vm/demo"
log "booting the test kernel under virtme-ng (TCG) and running tests/guest/demo.sh"
python3 "$POLYNIC_ROOT/scripts/vm.py" --kdir "$kdir" --out "$out" --timeout 600 -- \
  env POLYNIC_MODULES="$POLYNIC_ROOT/out/build/modules" bash tests/guest/demo.sh
rc=$?
cat "$out/output.log"
exit $rc
