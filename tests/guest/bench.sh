#!/bin/bash
# Guest side of `make bench`: the same fio workloads against EBD, AoE
# (aoe.ko + vblade) and NBD (nbd.ko + nbd-server) over the same veth link
# (MTU 9000) to the same kind of backing file in a server namespace, and
# iperf3 TCP on that link as the ceiling. Results go to $POLYNIC_OUT/bench/.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/ebd.sh"
trap 'ebd_teardown; pkill vblade; pkill nbd-server; pkill iperf3' EXIT
RUNTIME=${BENCH_RUNTIME:-10}
SIZE_MIB=512
res="$POLYNIC_OUT/bench"
mkdir -p "$res"
rm -f "$res"/*.json

ebd_setup "$SIZE_MIB"
ip addr add 10.99.0.1/24 dev pnk0
ip -n ebdsrv addr add 10.99.0.2/24 dev pnk1
for img in aoe nbd; do truncate -s "${SIZE_MIB}M" "/tmp/$img.img"; done

# Fill each device once so reads hit allocated blocks, then run the four
# workloads. fio_suite NAME DEVICE
fio_suite() {
  local name=$1 dev=$2 w
  dd if=/dev/zero of="$dev" bs=1M count=256 oflag=direct status=none || fail "$name: prefill"
  for w in "seqread read 1M 16" "seqwrite write 1M 16" "randread randread 4k 32" "randwrite randwrite 4k 32"; do
    set -- $w
    echo "   $name $1"
    fio --name="$name-$1" --filename="$dev" --rw="$2" --bs="$3" --iodepth="$4" --ioengine=libaio --direct=1 \
      --size=256M --time_based --runtime="$RUNTIME" --ramp_time=2 --group_reporting \
      --output-format=json --output="$res/$name-$1.json" >/dev/null 2>&1 || fail "$name $1: fio failed"
  done
}

echo "== link: iperf3 TCP over pnk0 (MTU 9000), ${RUNTIME} s"
ip netns exec ebdsrv iperf3 -s -1 -D -B 10.99.0.2 || fail "iperf3 server"
sleep 1
iperf3 -c 10.99.0.2 -t "$RUNTIME" -J >"$res/link-tcp.json" || fail "iperf3"

echo "== EBD"
ebd_server_start
ebdctl attach --name bench --netdev pnk0 --queue-depth 64 ${EBD_WINDOW:+--window "$EBD_WINDOW"} >/dev/null \
  || fail "ebd attach"
# What the personality pins while attached, and the most frame payload its
# window lets be in flight (the kernel's own accounting of both).
echo "{\"ebd_pinned_bytes\": $(ebd_stat bench pinned_bytes), \"ebd_window_bytes\": $(ebd_stat bench window_bytes)}" \
  >"$res/memory.json"
fio_suite ebd /dev/ebd0
ebdctl stats bench >"$res/ebd-stats.txt"
ebdctl detach bench
ebd_server_stop
# Tuning runs measure EBD alone (BENCH_ONLY=ebd); the report needs all three.
[[ ${BENCH_ONLY:-} == ebd ]] && exit 0

echo "== AoE (aoe.ko + vblade)"
modprobe aoe aoe_iflist=pnk0 || fail "modprobe aoe"
ip netns exec ebdsrv vblade 0 1 pnk1 /tmp/aoe.img >/tmp/vblade.log 2>&1 &
for i in $(seq 50); do
  aoe-discover 2>/dev/null
  [[ -b /dev/etherd/e0.1 ]] && break
  sleep 0.2
done
[[ -b /dev/etherd/e0.1 ]] || fail "AoE device did not appear"
fio_suite aoe /dev/etherd/e0.1
pkill vblade
rmmod aoe 2>/dev/null

echo "== NBD (nbd.ko + nbd-server)"
modprobe nbd || fail "modprobe nbd"
cat >/tmp/nbd.conf <<CONF
[generic]
[bench]
exportname = /tmp/nbd.img
CONF
ip netns exec ebdsrv nbd-server -C /tmp/nbd.conf 10.99.0.2@10809 || fail "nbd-server"
sleep 1
nbd-client -N bench 10.99.0.2 10809 /dev/nbd0 -b 4096 -C 1 >/dev/null 2>&1 || fail "nbd-client"
fio_suite nbd /dev/nbd0
nbd-client -d /dev/nbd0 >/dev/null 2>&1
pkill nbd-server
echo "== done"
