#!/bin/bash
# Guest side of `make bench`, pnic section: a pnic pair alone, with no bus
# and with both NICs on one default bus (32-bit 33 MHz PCI), next to a veth
# pair, each joining two namespaces at MTU 9000. iperf3 TCP, UDP with
# 1470-byte and 8972-byte datagrams, in interleaved rounds; for each run the
# guest's CPU time (/proc/stat) and, for pnic, its engines' time and its bus
# counters. Results go to $POLYNIC_OUT/bench/pnic/ for
# scripts/bench_pnic_report.py.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUNTIME=${BENCH_RUNTIME:-10}
ROUNDS=${BENCH_ROUNDS:-3}
CFG=/sys/kernel/config
res="$POLYNIC_OUT/bench/pnic"
mkdir -p "$res"
rm -f "$res"/*
cleanup() {
  pkill iperf3
  local d
  for d in "$CFG"/pnic/*/; do [[ -d $d ]] && { echo 0 >"$d/power"; rmdir "$d"; }; done
  for d in "$CFG"/pnic_bus/*/; do [[ -d $d ]] && rmdir "$d"; done
  ip netns del bn1 2>/dev/null
  ip netns del bn2 2>/dev/null
  rmmod pnic 2>/dev/null
  return 0
}
trap cleanup EXIT

mountpoint -q $CFG || mount -t configfs none $CFG
# The module does not show its parameters in sysfs: load it with an
# explicit scale and record that.
SCALE=${PNIC_TIME_SCALE:-1}
insmod "$(module_path pnic)" time_scale="$SCALE" || fail "insmod pnic"
ip netns add bn1 && ip netns add bn2 || fail "netns"

# join NAME N DEV_A DEV_B: addresses 10.88.N.1 (bn1) and .2 (bn2), MTU 9000.
join() {
  local n=$2 a=$3 b=$4
  ip link set "$a" netns bn1 && ip link set "$b" netns bn2 || fail "$1: move"
  ip -n bn1 addr add "10.88.$n.1/24" dev "$a" && ip -n bn2 addr add "10.88.$n.2/24" dev "$b" || fail "$1: addresses"
  ip -n bn1 link set "$a" mtu 9000 up && ip -n bn2 link set "$b" mtu 9000 up || fail "$1: up"
  ip netns exec bn2 iperf3 -s -D -B "10.88.$n.2" || fail "$1: iperf3 server"
}

# pnic_pair PAIR [BUS]: a powered pair pPAIRa/pPAIRb, both NICs on BUS.
pnic_pair() {
  mkdir "$CFG/pnic/$1" || fail "mkdir $1"
  echo "$1a" >"$CFG/pnic/$1/name_a" && echo "$1b" >"$CFG/pnic/$1/name_b" || fail "$1: names"
  if [[ -n ${2:-} ]]; then
    echo "$2" >"$CFG/pnic/$1/bus_a" && echo "$2" >"$CFG/pnic/$1/bus_b" || fail "$1: bus"
  fi
  echo 1 >"$CFG/pnic/$1/power" || fail "$1: power"
}

ip link add vba type veth peer name vbb || fail "veth"
join veth 0 vba vbb
pnic_pair nb
join pnic-nobus 1 nba nbb
mkdir "$CFG/pnic_bus/pci" || fail "mkdir bus"
cat "$CFG/pnic_bus/pci"/{bandwidth_bps,arbitration_ns,pio_read_ns} | paste -sd' ' >"$res/bus-params.txt"
echo "$SCALE" >"$res/time-scale.txt"
pnic_pair pb pci
join pnic-bus 2 pba pbb
pause 1

declare -A ADDR=([veth]=10.88.0.2 [pnic-nobus]=10.88.1.2 [pnic-bus]=10.88.2.2)
declare -A PAIR=([pnic-nobus]=nb [pnic-bus]=pb)
links=(veth pnic-nobus pnic-bus)
tests=("tcp" "udp1470 -u -b 0 -l 1470" "udp8972 -u -b 0 -l 8972")

# The busy and total jiffies of all CPUs.
cpu_jiffies() {
  local cpu user nice system idle iowait irq softirq steal rest
  read -r cpu user nice system idle iowait irq softirq steal rest </proc/stat
  echo "$((user + nice + system + irq + softirq + steal)) $((user + nice + system + idle + iowait + irq + softirq + steal))"
}

# pnic_counter PAIR KEY: one stats line of a pair.
pnic_counter() {
  local line lines
  mapfile -t lines <"$CFG/pnic/$1/stats"
  for line in "${lines[@]}"; do [[ $line == "$2 "* ]] && { echo "${line#* }"; return; }; done
  echo 0
}

for round in $(seq "$ROUNDS"); do
  n=${#links[@]}
  order=()
  for i in $(seq 0 $((n - 1))); do order+=("${links[$(((round - 1 + i) % n))]}"); done
  echo "== round $round of $ROUNDS: ${order[*]}"
  for link in "${order[@]}"; do
    for t in "${tests[@]}"; do
      set -- $t
      name=$1
      shift
      pair=${PAIR[$link]:-}
      eng0=0
      [[ -n $pair ]] && eng0=$(($(pnic_counter "$pair" a.engine_ns) + $(pnic_counter "$pair" b.engine_ns)))
      [[ $link == pnic-bus ]] && echo reset >"$CFG/pnic_bus/pci/stats"
      read -r busy0 total0 < <(cpu_jiffies)
      start=$EPOCHREALTIME
      ip netns exec bn1 iperf3 -c "${ADDR[$link]}" -t "$RUNTIME" -J "$@" >"$res/$link-$name.r$round.json" \
        2>>"$res/iperf3-warnings.txt" || fail "$link $name: iperf3 failed: $(tail -3 "$res/$link-$name.r$round.json")"
      end=$EPOCHREALTIME
      read -r busy1 total1 < <(cpu_jiffies)
      eng1=0
      [[ -n $pair ]] && eng1=$(($(pnic_counter "$pair" a.engine_ns) + $(pnic_counter "$pair" b.engine_ns)))
      bus_busy=0
      if [[ $link == pnic-bus ]]; then
        mapfile -t lines <"$CFG/pnic_bus/pci/stats"
        for line in "${lines[@]}"; do [[ $line == *.busy_ns\ * ]] && bus_busy=$((bus_busy + ${line#* })); done
      fi
      echo "{\"busy_jiffies\": $((busy1 - busy0)), \"total_jiffies\": $((total1 - total0)), \"cpus\": $(nproc)," \
        "\"seconds\": $(echo "$end - $start" | bc), \"engine_ns\": $((eng1 - eng0)), \"bus_busy_ns\": $bus_busy}" \
        >"$res/$link-$name.r$round.cpu.json"
      echo "   $link $name done"
    done
  done
done
# Perturbation (seed 001 §IV): the host's memory-copy bandwidth alone, and
# while each link carries the same fixed-rate UDP stream. Against the veth
# figure, the pnic figures show what the emulation itself takes from the
# host beyond what the same traffic costs the stack.
RATE=${PNIC_PERTURB_RATE:-20M}
echo "$RATE" >"$res/perturb-rate.txt"
for round in $(seq "$ROUNDS"); do
  echo "== perturbation round $round of $ROUNDS ($RATE UDP)"
  for link in idle "${links[@]}"; do
    traffic=
    if [[ $link != idle ]]; then
      ip netns exec bn1 iperf3 -c "${ADDR[$link]}" -u -b "$RATE" -l 1470 -t $((RUNTIME + 2)) -J \
        >"$res/perturb-$link.r$round.json" 2>>"$res/iperf3-warnings.txt" &
      traffic=$!
      pause 1
    fi
    python3 "$(dirname "${BASH_SOURCE[0]}")/copybench.py" --seconds "$RUNTIME" >"$res/perturb-$link.r$round.txt" \
      || fail "copy bench during $link"
    if [[ -n $traffic ]]; then wait "$traffic" || fail "perturbation stream over $link"; fi
    echo "   $link: $(<"$res/perturb-$link.r$round.txt") MB/s copied"
  done
done
for p in nb pb; do cat "$CFG/pnic/$p/stats" >"$res/stats-$p.txt"; done
cat "$CFG/pnic_bus/pci/stats" >"$res/stats-bus.txt"
echo "== pnic done"
