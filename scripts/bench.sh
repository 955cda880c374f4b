#!/usr/bin/env bash
# `make bench`: EBD against AoE and NBD, and the link's TCP ceiling, in one VM
# run on one veth link; writes out/bench/results.{json,md,png}. A benchmark,
# not a test: it reports figures and ratios, it does not pass or fail on them.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$POLYNIC_ROOT"
# The bench kernel: the test kernel without KASAN, lockdep and kmemleak
# (scripts/polynic-bench.config); built once into the cache (~11 min).
prepare_guest bench
out="$POLYNIC_ROOT/out/vm/bench"
log "booting the bench kernel and running tests/guest/bench.sh (${BENCH_ROUNDS:-3} rounds, about 3 minutes each)"
rc=0
run_guest "$out" 3000 BENCH_RUNTIME="${BENCH_RUNTIME:-10}" BENCH_ROUNDS="${BENCH_ROUNDS:-3}" BENCH_ONLY="${BENCH_ONLY:-}" EBD_WINDOW="${EBD_WINDOW:-}" \
  bash tests/guest/bench.sh || rc=$?
if [[ $rc -ne 0 ]]; then
  tail -n 30 "$out/output.log"
  die "benchmark run failed (logs: $out)"
fi
[[ -n ${BENCH_ONLY:-} ]] && { log "BENCH_ONLY=$BENCH_ONLY: raw fio results in $out/bench, no report"; exit 0; }
python3 "$POLYNIC_ROOT/scripts/bench_report.py" "$out/bench" "$POLYNIC_ROOT/out/bench"
