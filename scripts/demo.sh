#!/usr/bin/env bash
# `make demo`: boot the test kernel and run the Ethernet Block Device demo
# (tests/guest/demo.sh): ebd-server on a sparse file in a server namespace,
# /dev/ebd0 over a veth pair, a filesystem, files copied and verified,
# throughput and counters printed.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$POLYNIC_ROOT"
prepare_guest
out="$POLYNIC_ROOT/out/vm/demo"
log "booting the test kernel under virtme-ng (TCG) and running tests/guest/demo.sh"
rc=0
run_guest "$out" 600 bash tests/guest/demo.sh || rc=$?
cat "$out/output.log"
exit $rc
