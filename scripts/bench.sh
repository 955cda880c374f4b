#!/usr/bin/env bash
# `make bench`: the benchmark sections, in one VM run on the bench kernel.
#   ebd   EBD against AoE and NBD and the link's TCP ceiling, on one veth link
#         (out/bench/results.{md,json,png})
#   pnic  a pnic pair with no bus and on a modelled PCI bus, next to veth
#         (out/bench/pnic/results.{md,json,png})
#   fwd   a router forwarding UDP from 1-3 sources by ip_forward and the fwd
#         module's three paths, over pnic on a modelled bus and over veth
#         (out/bench/fwd/results.{md,json,png})
#   bqi   raw frames user to user by BQI endpoints against kernel UDP
#         sockets, AF_PACKET (TPACKET_V3) and AF_XDP (copy mode) on one veth
#         link (out/bench/bqi/results.{md,json,png})
#   userlevel  user-level UDP and TCP (bqi-net) against the kernel's sockets
#         (sockperf, iperf3) on one veth link
#         (out/bench/userlevel/results.{md,json,png})
#   aoe   the Rust AoE initiator (aoei, on the storage personality) against
#         aoe.ko on one vblade over one veth link
#         (out/bench/aoe/results.{md,json,png})
# BENCH_ONLY=SECTION runs one section; BENCH_EBD_ALONE=1 measures EBD
# without its anchors, for tuning (no report). POLYNIC_VM_HOST_CPUS=N holds
# the VM to N host CPUs and POLYNIC_QEMU_CPU picks the guest's CPU model
# (scripts/vm.py): a slower machine, on purpose. A benchmark, not a test: it
# reports figures and ratios, it does not pass or fail on them.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$POLYNIC_ROOT"
only=${BENCH_ONLY:-}
case $only in "" | ebd | pnic | fwd | bqi | userlevel | aoe) ;; *) die "BENCH_ONLY=$only: no such section (ebd, pnic, fwd, bqi, userlevel, aoe)" ;; esac
sections=()
[[ -z $only || $only == ebd ]] && sections+=(ebd)
[[ -z $only || $only == pnic ]] && sections+=(pnic)
[[ -z $only || $only == fwd ]] && sections+=(fwd)
[[ -z $only || $only == bqi ]] && sections+=(bqi)
[[ -z $only || $only == userlevel ]] && sections+=(userlevel)
[[ -z $only || $only == aoe ]] && sections+=(aoe)
# The bench kernel: the test kernel without KASAN, lockdep and kmemleak
# (scripts/polynic-bench.config); built once into the cache (~30 min).
prepare_guest bench
out="$POLYNIC_ROOT/out/vm/bench"
log "booting the bench kernel for ${sections[*]} (${BENCH_ROUNDS:-3} rounds; about 3 minutes a round for ebd, 2 for pnic; fwd: ${FWD_ROUNDS:-2} rounds, about 9 minutes each)"
guest=()
for s in "${sections[@]}"; do
  case $s in
    ebd) guest+=("bash tests/guest/bench.sh") ;;
    pnic) guest+=("bash tests/guest/bench-pnic.sh") ;;
    fwd) guest+=("bash tests/guest/bench-fwd.sh") ;;
    bqi) guest+=("bash tests/guest/bench-bqi.sh") ;;
    userlevel) guest+=("bash tests/guest/bench-userlevel.sh") ;;
    aoe) guest+=("bash tests/guest/bench-aoe.sh") ;;
  esac
done
rc=0
run_guest "$out" 4800 BENCH_RUNTIME="${BENCH_RUNTIME:-8}" BENCH_ROUNDS="${BENCH_ROUNDS:-3}" \
  BENCH_EBD_ALONE="${BENCH_EBD_ALONE:-}" EBD_WINDOW="${EBD_WINDOW:-}" PNIC_TIME_SCALE="${PNIC_TIME_SCALE:-1}" \
  FWD_TIME_SCALE="${FWD_TIME_SCALE:-8}" FWD_ROUNDS="${FWD_ROUNDS:-2}" FWD_RUNTIME="${FWD_RUNTIME:-3}" \
  FWD_SIZES="${FWD_SIZES:-}" FWD_SOURCES="${FWD_SOURCES:-}" FWD_CONFIGS="${FWD_CONFIGS:-}" \
  BQI_RUNTIME="${BQI_RUNTIME:-3}" BQI_PINGS="${BQI_PINGS:-1000}" BQI_SIZES="${BQI_SIZES:-64 1500 9000}" \
  UL_RUNTIME="${UL_RUNTIME:-5}" UL_PINGS="${UL_PINGS:-1000}" UL_SIZES="${UL_SIZES:-16 256 1024 8192}" \
  bash -c "$(IFS=';'; echo "set -e; ${guest[*]}")" || rc=$?
if [[ $rc -ne 0 ]]; then
  tail -n 30 "$out/output.log"
  die "benchmark run failed (logs: $out)"
fi
# What the machine was made to be: the reports print it beside the figures.
python3 -c 'import json, sys; print(json.dumps({"qemu_cpu": sys.argv[1], "vm_host_cpus": sys.argv[2] or None}))' \
  "$(python3 -c 'import sys; sys.path.insert(0, "scripts"); import vm; print(vm.QEMU_CPU)')" "${POLYNIC_VM_HOST_CPUS:-}" \
  >"$out/bench/conditions.json"
for s in "${sections[@]}"; do
  case $s in
    ebd)
      if [[ -n ${BENCH_EBD_ALONE:-} ]]; then
        log "BENCH_EBD_ALONE: raw fio results in $out/bench, no report"
      else
        python3 scripts/bench_report.py "$out/bench" "$POLYNIC_ROOT/out/bench"
      fi
      ;;
    pnic) python3 scripts/bench_pnic_report.py "$out/bench/pnic" "$POLYNIC_ROOT/out/bench/pnic" ;;
    fwd) python3 scripts/bench_fwd_report.py "$out/bench/fwd" "$POLYNIC_ROOT/out/bench/fwd" ;;
    bqi) python3 scripts/bench_bqi_report.py "$out/bench/bqi" "$POLYNIC_ROOT/out/bench/bqi" ;;
    userlevel) python3 scripts/bench_userlevel_report.py "$out/bench/userlevel" "$POLYNIC_ROOT/out/bench/userlevel" ;;
    aoe) python3 scripts/bench_aoe_report.py "$out/bench/aoe" "$POLYNIC_ROOT/out/bench/aoe" ;;
  esac
done
