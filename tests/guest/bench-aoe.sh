#!/bin/bash
# Guest side of `make bench` (BENCH_ONLY=aoe): the Rust AoE initiator
# (aoei, on the storage personality) against the kernel's aoe.ko, both on
# the same unmodified vblade over the same veth link (MTU 9000), with iperf3
# TCP on that link as the machine's measure. The two initiators cannot
# share the link at once (each takes every AoE frame on it), so each round
# attaches one, runs the workloads, detaches it and attaches the other,
# starting with a different one each round. Results go to
# $POLYNIC_OUT/bench/aoe/.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/ebd.sh"
source "$(dirname "${BASH_SOURCE[0]}")/aoei.sh"
trap 'down_aoe; aoei_teardown; pkill iperf3; ebd_teardown; umount /run/polynic-bench-aoe 2>/dev/null' EXIT
RUNTIME=${BENCH_RUNTIME:-8}
ROUNDS=${BENCH_ROUNDS:-3}
SIZE_MIB=512
res="$POLYNIC_OUT/bench/aoe"
mkdir -p "$res"
rm -f "$res"/*.json "$res"/*.txt

# The export on a tmpfs of the bench's own, as in the EBD section.
IMG=/run/polynic-bench-aoe
mkdir -p "$IMG" && mount -t tmpfs -o size=$((SIZE_MIB + 64))M polynic-bench-aoe "$IMG" || fail "tmpfs for the image"
AOEI_IMG=$IMG/aoe.img
ebd_setup 1
ip addr add 10.99.0.1/24 dev pnk0
ip -n ebdsrv addr add 10.99.0.2/24 dev pnk1
truncate -s "${SIZE_MIB}M" "$AOEI_IMG"
aoei_vblade_start 0 1

initiators=(aoei aoe)
declare -A DEV=([aoei]=/dev/aoei0 [aoe]=/dev/etherd/e0.1)

up_aoei() {
  aoei_attach bench 0.1 queue_depth=64 || fail "aoei power on"
  cat "$AOEI_CFG/bench/disk" >"$res/aoei-disk.txt"
}

down_aoei() {
  cat "$AOEI_CFG/bench/stats" >>"$res/aoei-stats.txt"
  echo 0 >"$AOEI_CFG/bench/power" && rmdir "$AOEI_CFG/bench"
}

up_aoe() {
  modprobe aoe aoe_iflist=pnk0 || fail "modprobe aoe"
  local i
  for ((i = 0; i < 50; i++)); do
    aoe-discover 2>/dev/null
    [[ -b /dev/etherd/e0.1 ]] && return 0
    pause 0.2
  done
  fail "aoe.ko found no e0.1"
}

# aoe.ko holds the link until the module goes.
down_aoe() {
  [[ -d /sys/module/aoe ]] || return 0
  rmmod aoe
}

# Throughput at depth, 4K IOPS at depth, 4K latency at queue depth 1.
WORKLOADS=(
  "seqread read 1M 16" "seqwrite write 1M 16" "randread randread 4k 32" "randwrite randwrite 4k 32"
  "qd1read randread 4k 1"
)

# Reads should find written blocks: fill the export once.
up_aoei
dd if=/dev/zero of=/dev/aoei0 bs=1M count=256 oflag=direct status=none || fail "prefill"
down_aoei
rm -f "$res/aoei-stats.txt"
ip netns exec ebdsrv iperf3 -s -D -B 10.99.0.2 || fail "iperf3 server"
pause 1

for round in $(seq "$ROUNDS"); do
  order=("${initiators[@]}")
  ((round % 2 == 0)) && order=("${initiators[1]}" "${initiators[0]}")
  echo "== round $round of $ROUNDS: link (iperf3 TCP, ${RUNTIME} s), then ${order[*]}"
  iperf3 -c 10.99.0.2 -t "$RUNTIME" -J >"$res/link-tcp.r$round.json" || fail "iperf3"
  for d in "${order[@]}"; do
    "up_$d"
    for w in "${WORKLOADS[@]}"; do
      set -- $w
      echo "   round $round: $d $1"
      fio_bench "$res/$d-$1.r$round.json" "$d-$1" "${DEV[$d]}" "$2" "$3" "$4" 1 || fail "$d $1: fio failed"
    done
    "down_$d"
  done
done
echo "== done"
