#!/bin/bash
# Guest side of `make bench`: the same fio workloads against EBD, AoE
# (aoe.ko + vblade), NBD (nbd.ko + nbd-server) and NVMe/TCP (nvme-tcp +
# nvmet-tcp, a file-backed namespace) over the same veth link (MTU 9000) to
# the same kind of backing file in a server namespace, and iperf3 TCP on
# that link as the ceiling. All four devices are attached at once and
# measured in interleaved rounds (EBD, AoE, NBD, NVMe, then AoE, NBD, NVMe,
# EBD, ...), so a slow spell of the host affects every device alike; the
# report takes the median of the rounds. Results go to $POLYNIC_OUT/bench/.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/ebd.sh"
# AoE holds the link until its module goes, so it goes before the link.
trap 'nvme_teardown; nbd-client -d /dev/nbd0 >/dev/null 2>&1; pkill nbd-server; pkill vblade; rmmod aoe 2>/dev/null; pkill iperf3; ebd_teardown; umount /run/polynic-bench 2>/dev/null' EXIT
RUNTIME=${BENCH_RUNTIME:-8}
ROUNDS=${BENCH_ROUNDS:-3}
SIZE_MIB=512
res="$POLYNIC_OUT/bench"
mkdir -p "$res"
rm -f "$res"/*.json "$res"/*.txt

# Tuning runs measure EBD alone (BENCH_EBD_ALONE=1); the report needs all four.
devices=(ebd aoe nbd nvme)
declare -A DEV # device name -> its block device, set by attach_NAME
[[ -n ${BENCH_EBD_ALONE:-} ]] && devices=(ebd)

# Every device's backing file on one tmpfs of the bench's own: the guest's
# /tmp is an overlay whose files report a block size of 0 bytes, which
# nvmet would export as the namespace's block size (the initiator then
# refuses the namespace).
IMG=/run/polynic-bench
mkdir -p "$IMG" && mount -t tmpfs -o size=$((4 * SIZE_MIB + 64))M polynic-bench "$IMG" || fail "tmpfs for the images"
EBD_IMG=$IMG/ebd.img
ebd_setup "$SIZE_MIB"
ip addr add 10.99.0.1/24 dev pnk0
ip -n ebdsrv addr add 10.99.0.2/24 dev pnk1
for img in aoe nbd nvme; do truncate -s "${SIZE_MIB}M" "$IMG/$img.img"; done

# ebd-server polls its socket this long after each batch before sleeping
# (0: never); the QD1 workloads are measured again without it at the end.
EBD_POLL_US=${EBD_POLL_US:-200}
# EBD_PIN=1: serving thread k stays on CPU k, so a client queue's responses
# reach the client on that queue's CPU (two jobs gain; at queue depth 1 the
# polling thread then shares fio's CPU, and latency suffers).
EBD_SERVER_PIN=()
[[ ${EBD_PIN:-0} == 1 ]] && EBD_SERVER_PIN=(--pin)

attach_ebd() {
  ebd_server_start --poll-us "$EBD_POLL_US" "${EBD_SERVER_PIN[@]}"
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
  ip netns exec ebdsrv vblade 0 1 pnk1 "$IMG/aoe.img" >/tmp/vblade.log 2>&1 &
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
exportname = $IMG/nbd.img
CONF
  ip netns exec ebdsrv nbd-server -C /tmp/nbd.conf 10.99.0.2@10809 || fail "nbd-server"
  sleep 1
  nbd-client -N bench 10.99.0.2 10809 /dev/nbd0 -b 4096 -C 1 >/dev/null 2>&1 || fail "nbd-client"
  DEV[nbd]=/dev/nbd0
}

NVME_NQN=nqn.2026-11.org.polynic:bench
NVME_CFG=/sys/kernel/config/nvmet
# A file-backed NVMe namespace exported by nvmet-tcp from the server
# namespace (the port's listening socket is made in the namespace of the
# process that links the subsystem to it), and nvme-tcp connecting to it.
attach_nvme() {
  local m
  for m in nvmet nvmet-tcp nvme-tcp; do modprobe "$m" || fail "modprobe $m"; done
  mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
  local sub=$NVME_CFG/subsystems/$NVME_NQN port=$NVME_CFG/ports/1
  mkdir "$sub" && echo 1 >"$sub/attr_allow_any_host" || fail "nvmet subsystem"
  mkdir "$sub/namespaces/1" || fail "nvmet namespace"
  # tmpfs has no O_DIRECT: the target reads and writes the file through
  # the page cache, as vblade and nbd-server do theirs.
  echo "$IMG/nvme.img" >"$sub/namespaces/1/device_path" && echo 1 >"$sub/namespaces/1/buffered_io" \
    && echo 1 >"$sub/namespaces/1/enable" || fail "nvmet namespace enable"
  mkdir "$port" || fail "nvmet port"
  echo ipv4 >"$port/addr_adrfam" && echo tcp >"$port/addr_trtype" && echo 10.99.0.2 >"$port/addr_traddr" \
    && echo 4420 >"$port/addr_trsvcid" || fail "nvmet port address"
  # nsenter, not `ip netns exec`, which mounts a sysfs of its own without
  # configfs under it.
  nsenter --net=/run/netns/ebdsrv ln -s "$sub" "$port/subsystems/$NVME_NQN" || fail "nvmet port link"
  nvme connect -t tcp -a 10.99.0.2 -s 4420 -n "$NVME_NQN" >/dev/null || fail "nvme connect"
  local i dev=
  for ((i = 0; i < 50; i++)); do
    dev=$(grep -l "$NVME_NQN" /sys/class/nvme/nvme*/subsysnqn 2>/dev/null | head -1)
    [[ -n $dev ]] && dev=$(basename "$(dirname "$dev")") && [[ -b /dev/${dev}n1 ]] && break
    dev=
    sleep 0.2
  done
  [[ -n $dev ]] || fail "NVMe/TCP namespace did not appear"
  # queue_count counts the admin queue too.
  echo "   nvme: /dev/${dev}n1, queues (admin + I/O): $(cat /sys/class/nvme/"$dev"/queue_count 2>/dev/null)"
  DEV[nvme]=/dev/${dev}n1
}

nvme_teardown() {
  [[ -d $NVME_CFG ]] || return 0
  nvme disconnect -n "$NVME_NQN" >/dev/null 2>&1
  rm -f "$NVME_CFG/ports/1/subsystems/$NVME_NQN"
  rmdir "$NVME_CFG/ports/1" "$NVME_CFG/subsystems/$NVME_NQN/namespaces/1" "$NVME_CFG/subsystems/$NVME_NQN" 2>/dev/null
  return 0
}

# The workloads, each on one device, once: name, fio rw, block size, queue
# depth, jobs. Throughput at depth (one job); 4K latency at queue depth 1;
# the same throughput workloads with two jobs, one per vCPU, for scaling.
# Latency is fio's total (submission and completion, lat_percentiles), not
# its completion latency alone: nvme-tcp sends a command from within the
# submitting call, and on this one-host link much of the round trip then
# happens before io_submit returns, outside clat (3.5 µs median clat
# against 113 µs mean total at QD1 in a trial).
WORKLOADS=(
  "seqread read 1M 16 1" "seqwrite write 1M 16 1" "randread randread 4k 32 1" "randwrite randwrite 4k 32 1"
  "qd1read randread 4k 1 1" "qd1write randwrite 4k 1 1"
  "seqread2j read 1M 16 2" "randread2j randread 4k 32 2" "randwrite2j randwrite 4k 32 2"
)
# cpu_ticks PID: user and system clock ticks the process has used.
cpu_ticks() {
  awk '{print $14 + $15}' "/proc/$1/stat"
}

# idle_ticks: "IDLE TOTAL" clock ticks of all CPUs so far (idle and iowait
# count as idle).
idle_ticks() {
  awk '/^cpu / {t = 0; for (i = 2; i <= NF; i++) t += $i; print $5 + $6, t}' /proc/stat
}

# run_suite NAME DEVICE ROUND [WORKLOAD...]: the workloads (all of them
# if none is named), once each; for EBD also what ebd-server's process
# spent meanwhile.
run_suite() {
  local name=$1 dev=$2 round=$3 w pid= ticks t0 hz idle0 total0 idle1 total1
  shift 3
  local chosen=("$@")
  ((${#chosen[@]})) || chosen=("${WORKLOADS[@]}")
  [[ $name == ebd ]] && pid=$(ebd_server_pid)
  hz=$(getconf CLK_TCK)
  for w in "${chosen[@]}"; do
    set -- $w
    echo "   round $round: $name $1"
    if [[ -n $pid ]]; then
      ticks=$(cpu_ticks "$pid")
      t0=$(date +%s.%N)
      read -r idle0 total0 < <(idle_ticks)
    fi
    fio_bench "$res/$name-$1.r$round.json" "$name-$1" "$dev" "$2" "$3" "$4" "$5" || fail "$name $1: fio failed"
    if [[ -n $pid ]]; then
      read -r idle1 total1 < <(idle_ticks)
      # printf: bc writes .5 for 0.5, which JSON refuses. The idle share
      # is of every vCPU: what a second job could still have used.
      echo "{\"cpu_s\": $(printf %.3f "$(echo "($(cpu_ticks "$pid") - $ticks) / $hz" | bc -l)"), \"wall_s\": $(printf %.3f "$(echo "$(date +%s.%N) - $t0" | bc -l)"), \"idle_share\": $(printf %.3f "$(echo "($idle1 - $idle0) / ($total1 - $total0)" | bc -l)")}" \
        >"$res/$name-$1.r$round.cpu.json"
    fi
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
if [[ " ${devices[*]} " == *" ebd "* && $EBD_POLL_US != 0 ]]; then
  echo "== EBD's QD1 workloads with ebd-server not polling, $ROUNDS times"
  ebd_server_stop
  ebd_server_start "${EBD_SERVER_PIN[@]}"
  # The disk rides out the restart; one read makes sure it is back.
  dd if=/dev/ebd0 of=/dev/null bs=4k count=1 iflag=direct status=none || fail "ebd after the server restart"
  for round in $(seq "$ROUNDS"); do
    run_suite ebd-nopoll /dev/ebd0 "$round" "qd1read randread 4k 1 1" "qd1write randwrite 4k 1 1"
  done
fi
ebdctl stats bench >"$res/ebd-stats.txt"
ebdctl stats bench --per-queue >"$res/ebd-queue-stats.txt"
echo "== done"
