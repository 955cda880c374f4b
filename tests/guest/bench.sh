#!/bin/bash
# Guest side of `make bench`: the same fio workloads against EBD, AoE
# (aoe.ko + vblade) and NBD (nbd.ko + nbd-server) over the same veth link
# (MTU 9000) to the same kind of backing file in a server namespace, and
# iperf3 TCP on that link as the ceiling. All three devices are attached at
# once and measured in interleaved rounds (EBD, AoE, NBD, then AoE, NBD,
# EBD, ...), so a slow spell of the host affects every device alike; the report takes the
# median of the rounds. Results go to $POLYNIC_OUT/bench/.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/ebd.sh"
# AoE holds the link until its module goes, so it goes before the link.
trap 'nbd-client -d /dev/nbd0 >/dev/null 2>&1; pkill nbd-server; pkill vblade; rmmod aoe 2>/dev/null; pkill iperf3; ebd_teardown' EXIT
RUNTIME=${BENCH_RUNTIME:-10}
ROUNDS=${BENCH_ROUNDS:-3}
SIZE_MIB=512
res="$POLYNIC_OUT/bench"
mkdir -p "$res"
rm -f "$res"/*.json "$res"/*.txt

# Tuning runs measure EBD alone (BENCH_EBD_ALONE=1); the report needs all three.
devices=(ebd aoe nbd)
declare -A DEV # device name -> its block device, set by attach_NAME
[[ -n ${BENCH_EBD_ALONE:-} ]] && devices=(ebd)

ebd_setup "$SIZE_MIB"
ip addr add 10.99.0.1/24 dev pnk0
ip -n ebdsrv addr add 10.99.0.2/24 dev pnk1
for img in aoe nbd; do truncate -s "${SIZE_MIB}M" "/tmp/$img.img"; done

attach_ebd() {
  ebd_server_start
  ebdctl attach --name bench --netdev pnk0 --queue-depth 64 ${EBD_WINDOW:+--window "$EBD_WINDOW"} >/dev/null \
    || fail "ebd attach"
  # What the personality pins while attached, and the most frame payload
  # its window lets be in flight (the kernel's own accounting of both).
  echo "{\"ebd_pinned_bytes\": $(ebd_stat bench pinned_bytes), \"ebd_window_bytes\": $(ebd_stat bench window_bytes)}" \
    >"$res/memory.json"
  DEV[ebd]=/dev/ebd0
}

attach_aoe() {
  modprobe aoe aoe_iflist=pnk0 || fail "modprobe aoe"
  ip netns exec ebdsrv vblade 0 1 pnk1 /tmp/aoe.img >/tmp/vblade.log 2>&1 &
  local i
  for i in $(seq 50); do
    aoe-discover 2>/dev/null
    [[ -b /dev/etherd/e0.1 ]] && break
    sleep 0.2
  done
  [[ -b /dev/etherd/e0.1 ]] || fail "AoE device did not appear"
  DEV[aoe]=/dev/etherd/e0.1
}

attach_nbd() {
  modprobe nbd || fail "modprobe nbd"
  cat >/tmp/nbd.conf <<CONF
[generic]
[bench]
exportname = /tmp/nbd.img
CONF
  ip netns exec ebdsrv nbd-server -C /tmp/nbd.conf 10.99.0.2@10809 || fail "nbd-server"
  sleep 1
  nbd-client -N bench 10.99.0.2 10809 /dev/nbd0 -b 4096 -C 1 >/dev/null 2>&1 || fail "nbd-client"
  DEV[nbd]=/dev/nbd0
}

# The four workloads on one device, once. run_suite NAME DEVICE ROUND
run_suite() {
  local name=$1 dev=$2 round=$3 w
  for w in "seqread read 1M 16" "seqwrite write 1M 16" "randread randread 4k 32" "randwrite randwrite 4k 32"; do
    set -- $w
    echo "   round $round: $name $1"
    fio --name="$name-$1" --filename="$dev" --rw="$2" --bs="$3" --iodepth="$4" --ioengine=libaio --direct=1 \
      --size=256M --time_based --runtime="$RUNTIME" --ramp_time=2 --group_reporting \
      --output-format=json --output="$res/$name-$1.r$round.json" >/dev/null 2>&1 || fail "$name $1: fio failed"
  done
}

echo "== attaching ${devices[*]} over pnk0 (MTU 9000)"
for d in "${devices[@]}"; do
  "attach_$d"
  # Fill each device once so that reads hit allocated blocks.
  dd if=/dev/zero of="${DEV[$d]}" bs=1M count=256 oflag=direct status=none || fail "$d: prefill"
done
ip netns exec ebdsrv iperf3 -s -D -B 10.99.0.2 || fail "iperf3 server"
sleep 1

for round in $(seq "$ROUNDS"); do
  # Each round starts with the next device, so drift within a round does
  # not always favour the same one.
  n=${#devices[@]}
  order=()
  for i in $(seq 0 $((n - 1))); do order+=("${devices[$(((round - 1 + i) % n))]}"); done
  echo "== round $round of $ROUNDS: link (iperf3 TCP, ${RUNTIME} s), then ${order[*]}"
  iperf3 -c 10.99.0.2 -t "$RUNTIME" -J >"$res/link-tcp.r$round.json" || fail "iperf3"
  for d in "${order[@]}"; do
    run_suite "$d" "${DEV[$d]}" "$round"
  done
done
ebdctl stats bench >"$res/ebd-stats.txt"
echo "== done"
