#!/bin/bash
# Guest side of `make bench`, fwd section (seed 000 §6, Figure 5): UDP from
# 1, 2 and 3 source hosts through a router to as many sinks, packet sizes
# 128 B to 8 KiB, in five configurations measured in the same run:
#   ipfwd-pnic      the kernel's ip_forward over pnic NICs (the paper's
#                   "standard driver"), no module attached
#   conventional    the fwd module's conventional path, same NICs
#   in-place        header fields over the bus, then peer DMA
#   header-copy     headers copied to host and back, then peer DMA
#   ipfwd-veth      the kernel's ip_forward over veth: no bus at all
# Each source host has a pnic link (its router end on the router's bus, the
# paper's 32-bit 33 MHz PCI) and a veth link to its router; each sink the
# same. `udpflow send` offers as much as the source's link takes, `udpflow
# sink` accounts for every datagram by sequence number. For every point:
# the senders' and sinks' reports, the guest's CPU time by kind, the bus's
# counters, the module's counters and the pnic pairs' drop counters, under
# $POLYNIC_OUT/bench/fwd/ for scripts/bench_fwd_report.py.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUNTIME=${FWD_RUNTIME:-3}
ROUNDS=${FWD_ROUNDS:-2}
SCALE=${FWD_TIME_SCALE:-8}
read -r -a SIZES <<<"${FWD_SIZES:-128 512 1024 2048 4096 8192}"
read -r -a SOURCES <<<"${FWD_SOURCES:-1 2 3}"
read -r -a CONFIGS <<<"${FWD_CONFIGS:-ipfwd-pnic conventional in-place header-copy ipfwd-veth}"
MAXSRC=3
CFG=/sys/kernel/config
F=$CFG/fwd
P=$CFG/pnic
BUS=$CFG/pnic_bus/fwdbench
res="$POLYNIC_OUT/bench/fwd"
mkdir -p "$res"
rm -rf "${res:?}"/*
udpflow() { "$POLYNIC_BIN/udpflow" "$@"; }
fwdctl() { "$POLYNIC_BIN/fwdctl" "$@"; }

cleanup() {
  pkill udpflow
  local d
  for d in "$F"/*/; do [[ -d $d ]] && rmdir "$d"; done
  for d in "$P"/*/; do [[ -d $d ]] && { echo 0 >"$d/power"; rmdir "$d"; }; done
  [[ -d $BUS ]] && rmdir "$BUS"
  for d in fr vr $(seq -f 'src%g' $MAXSRC) $(seq -f 'snk%g' $MAXSRC); do ip netns del "$d" 2>/dev/null; done
  rmmod fwd 2>/dev/null
  rmmod pnic 2>/dev/null
  return 0
}
trap cleanup EXIT

mountpoint -q $CFG || mount -t configfs none $CFG
insmod "$(module_path pnic)" time_scale="$SCALE" || fail "insmod pnic"
insmod "$(module_path fwd)" || fail "insmod fwd"
echo "$SCALE" >"$res/time-scale.txt"
echo "$RUNTIME" >"$res/runtime.txt"
for ns in fr vr $(seq -f 'src%g' $MAXSRC) $(seq -f 'snk%g' $MAXSRC); do
  ip netns add "$ns" && ip -n "$ns" link set lo up || fail "netns $ns"
done
mkdir "$BUS" || fail "mkdir bus"
cat "$BUS"/{bandwidth_bps,arbitration_ns,pio_read_ns} | paste -sd' ' >"$res/bus-params.txt"

# Host i: source srcI and sink snkI. pnic pair sI joins srcI (sIa, no bus)
# to the router (sIb, on the bus); pair kI joins the router (kIa, on the
# bus) to snkI (kIb). The veth links vsI and vkI do the same to router vr.
# Addresses: 10.90.I.0/24 source-router and 10.91.I.0/24 router-sink over
# pnic, 10.92.I.0/24 and 10.93.I.0/24 over veth; .1 is the router's.
ROUTER_NICS=()
for i in $(seq $MAXSRC); do
  for pair in "s$i" "k$i"; do
    mkdir "$P/$pair" && echo "${pair}a" >"$P/$pair/name_a" && echo "${pair}b" >"$P/$pair/name_b" || fail "pair $pair"
  done
  echo fwdbench >"$P/s$i/bus_b" && echo fwdbench >"$P/k$i/bus_a" || fail "host $i: bus"
  echo 1 >"$P/s$i/power" && echo 1 >"$P/k$i/power" || fail "host $i: power"
  ip link add "vs${i}a" type veth peer name "vs${i}b" && ip link add "vk${i}a" type veth peer name "vk${i}b" \
    || fail "host $i: veth"
  printf '%s\n' "link set s${i}a netns src$i" "link set vs${i}a netns src$i" \
    "link set s${i}b netns fr" "link set k${i}a netns fr" \
    "link set vs${i}b netns vr" "link set vk${i}a netns vr" \
    "link set k${i}b netns snk$i" "link set vk${i}b netns snk$i" | ip -b - || fail "host $i: into namespaces"
  printf '%s\n' "addr add 10.90.$i.2/24 dev s${i}a" "addr add 10.92.$i.2/24 dev vs${i}a" \
    "link set s${i}a mtu 9000 up" "link set vs${i}a mtu 9000 up" \
    "route add 10.91.0.0/16 via 10.90.$i.1" "route add 10.93.0.0/16 via 10.92.$i.1" | ip -n "src$i" -b - \
    || fail "source $i"
  printf '%s\n' "addr add 10.91.$i.2/24 dev k${i}b" "addr add 10.93.$i.2/24 dev vk${i}b" \
    "link set k${i}b mtu 9000 up" "link set vk${i}b mtu 9000 up" \
    "route add 10.90.0.0/16 via 10.91.$i.1" "route add 10.92.0.0/16 via 10.93.$i.1" | ip -n "snk$i" -b - \
    || fail "sink $i"
  printf '%s\n' "addr add 10.90.$i.1/24 dev s${i}b" "addr add 10.91.$i.1/24 dev k${i}a" \
    "link set s${i}b mtu 9000 up" "link set k${i}a mtu 9000 up" | ip -n fr -b - || fail "router fr, host $i"
  printf '%s\n' "addr add 10.92.$i.1/24 dev vs${i}b" "addr add 10.93.$i.1/24 dev vk${i}a" \
    "link set vs${i}b mtu 9000 up" "link set vk${i}a mtu 9000 up" | ip -n vr -b - || fail "router vr, host $i"
  ROUTER_NICS+=("s${i}b" "k${i}a")
done
ip netns exec fr sysctl -qw net.ipv4.ip_forward=1 && ip netns exec vr sysctl -qw net.ipv4.ip_forward=1 \
  || fail "ip_forward"
pause 1

# use CONFIG: the router's NICs as the configuration needs them.
use() {
  local nic
  for nic in "${ROUTER_NICS[@]}"; do
    case $1 in
      ipfwd-*) [[ -d $F/$nic ]] && { rmdir "$F/$nic" || fail "detach $nic"; } ;;
      *)
        [[ -d $F/$nic ]] || fwdctl --netns fr attach "$nic" >/dev/null || fail "attach $nic"
        fwdctl mode "$nic" "$1" || fail "$nic: mode $1"
        ;;
    esac
  done
}

# The sink address of host I in CONFIG.
sink_addr() { [[ $1 == ipfwd-veth ]] && echo "10.93.$2.2" || echo "10.91.$2.2"; }

# The first packets to a next hop the router has not resolved go through
# the stack: resolve every path before measuring it.
for i in $(seq $MAXSRC); do
  for c in ipfwd-pnic ipfwd-veth; do
    ip netns exec "src$i" ping -c 1 -W 5 "$(sink_addr $c "$i")" >/dev/null || fail "no path from source $i ($c)"
  done
done

# CPU jiffies of all CPUs: busy, softirq, total.
cpu_jiffies() {
  local cpu user nice system idle iowait irq softirq steal rest
  read -r cpu user nice system idle iowait irq softirq steal rest </proc/stat
  echo "$((user + nice + system + irq + softirq + steal)) $softirq $((user + nice + system + idle + iowait + irq + softirq + steal))"
}

# measure CONFIG N SIZE DIR: N flows of SIZE-byte packets for RUNTIME
# seconds, everything recorded under DIR.
measure() {
  local cfg=$1 n=$2 size=$3 dir=$4 i nic sinks=() senders=()
  mkdir -p "$dir"
  for i in $(seq "$n"); do
    rm -f "/tmp/fwdb-ready$i"
    ip netns exec "snk$i" "$POLYNIC_BIN/udpflow" sink --bind "$(sink_addr "$cfg" "$i"):$((9000 + i))" --flow "$i" \
      --seconds $((RUNTIME + 30)) --idle 1 --ready "/tmp/fwdb-ready$i" >"$dir/sink$i.json" &
    sinks+=($!)
  done
  for i in $(seq "$n"); do
    local t=0
    until [[ -e /tmp/fwdb-ready$i ]]; do
      ((t++ < 100)) || fail "$cfg: sink $i never listened"
      sleep 0.1
    done
  done
  for nic in "${ROUTER_NICS[@]}"; do [[ -d $F/$nic ]] && echo 0 >"$F/$nic/counters"; done
  echo 0 >"$BUS/stats"
  local window0=$EPOCHREALTIME
  for i in $(seq $MAXSRC); do cat "$P/s$i/stats" >"$dir/pair-s$i.before.txt"; done
  read -r busy0 soft0 total0 < <(cpu_jiffies)
  for i in $(seq "$n"); do
    ip netns exec "src$i" "$POLYNIC_BIN/udpflow" send --to "$(sink_addr "$cfg" "$i"):$((9000 + i))" --flow "$i" \
      --size "$size" --seconds "$RUNTIME" >"$dir/send$i.json" &
    senders+=($!)
  done
  for i in "${!senders[@]}"; do wait "${senders[$i]}" || fail "$cfg $n x $size: sender $((i + 1)) failed"; done
  read -r busy1 soft1 total1 < <(cpu_jiffies)
  cat "$BUS/stats" >"$dir/bus.txt"
  local window1=$EPOCHREALTIME
  for i in $(seq $MAXSRC); do cat "$P/s$i/stats" >"$dir/pair-s$i.after.txt"; done
  for nic in "${ROUTER_NICS[@]}"; do [[ -d $F/$nic ]] && cat "$F/$nic/counters" >"$dir/fwd-$nic.txt"; done
  for i in "${!sinks[@]}"; do wait "${sinks[$i]}" || fail "$cfg $n x $size: sink $((i + 1)) failed"; done
  echo "{\"busy_jiffies\": $((busy1 - busy0)), \"softirq_jiffies\": $((soft1 - soft0)), \"total_jiffies\": $((total1 - total0)), \"cpus\": $(nproc), \"bus_window_s\": $(printf %.3f "$(echo "$window1 - $window0" | bc)")}" \
    >"$dir/cpu.json"
}

points=$((${#CONFIGS[@]} * ${#SOURCES[@]} * ${#SIZES[@]}))
for round in $(seq "$ROUNDS"); do
  # Rotate the configurations from round to round, so that a slow spell of
  # the host does not always fall on the same one.
  order=()
  for k in "${!CONFIGS[@]}"; do order+=("${CONFIGS[$(((round - 1 + k) % ${#CONFIGS[@]}))]}"); done
  echo "== round $round of $ROUNDS: $points points of ${RUNTIME}s (${order[*]})"
  for cfg in "${order[@]}"; do
    use "$cfg"
    for n in "${SOURCES[@]}"; do
      for size in "${SIZES[@]}"; do
        measure "$cfg" "$n" "$size" "$res/$cfg/$n/$size/r$round"
      done
    done
    echo "   $cfg done"
  done
done
echo "== fwd done"
