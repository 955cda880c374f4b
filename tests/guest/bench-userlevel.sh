#!/bin/bash
# Guest side of `make bench`, userlevel section: user-level UDP and TCP
# (bqi-net over BQI endpoints, ulbench) against the kernel's UDP and TCP
# sockets (sockperf for the round trip, iperf3 for throughput), user to
# user between two namespaces over one veth pair (MTU 9000), both ends of
# each test the same kind. Round trips by message size (ping-pong,
# percentiles); streaming throughput measured at the receiver, with the
# guest's CPU time over the run (/proc/stat). Interleaved rounds, each
# starting with the next kind. Results go to $POLYNIC_OUT/bench/userlevel/
# for scripts/bench_userlevel_report.py.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROUNDS=${BENCH_ROUNDS:-3}
RUNTIME=${UL_RUNTIME:-5}
COUNT=${UL_PINGS:-1000}
SIZES=${UL_SIZES:-16 256 1024 8192}
res="$POLYNIC_OUT/bench/userlevel"
mkdir -p "$res"
rm -f "$res"/*
cleanup() {
  pkill sockperf
  pkill iperf3
  pkill ulbench
  pkill bqi-registry
  ip netns del w1 2>/dev/null
  ip netns del w2 2>/dev/null
  rmmod bqi 2>/dev/null
  return 0
}
trap cleanup EXIT

insmod "$(module_path bqi)" || fail "insmod bqi"
ip netns add w1 && ip netns add w2 || fail "netns"
ip link add wa netns w1 mtu 9000 type veth peer wb netns w2 mtu 9000 || fail "veth"
ip -n w1 addr add 10.81.0.1/24 dev wa && ip -n w1 link set wa up && ip -n w1 link set lo up || fail "wa"
ip -n w2 addr add 10.81.0.2/24 dev wb && ip -n w2 link set wb up && ip -n w2 link set lo up || fail "wb"
ip netns exec w1 ping -c 1 -W 2 10.81.0.2 >/dev/null || fail "link"
for n in 1 2; do
  ip netns exec w$n "$POLYNIC_BIN/bqi-registry" serve --socket /tmp/ulb-reg$n.sock --quiet-time 1 >/dev/null 2>&1 &
done
for ((i = 0; i < 50; i++)); do [[ -S /tmp/ulb-reg1.sock && -S /tmp/ulb-reg2.sock ]] && break; pause 0.1; done
ip netns exec w2 sockperf server -i 10.81.0.2 -p 11111 >/dev/null 2>&1 &
ip netns exec w2 sockperf server --tcp -i 10.81.0.2 -p 11112 >/dev/null 2>&1 &
ip netns exec w2 iperf3 -s -D -B 10.81.0.2 -p 5201 || fail "iperf3 server"
echo "$SIZES" >"$res/sizes.txt"
# exec: a server started in the background is then ulbench itself, which
# `kill` stops (not a shell around it).
ul1() { exec ip netns exec w1 "$POLYNIC_BIN/ulbench" --registry /tmp/ulb-reg1.sock --dev wa "$@"; }
ul2() { exec ip netns exec w2 "$POLYNIC_BIN/ulbench" --registry /tmp/ulb-reg2.sock --dev wb "$@"; }
BUSY=${UL_BUSY_POLL_US:-500}
ul1_sub() { (ul1 "$@"); }
# ready FILE: waits until a ulbench server said it is ready.
ready() {
  local i
  for ((i = 0; i < 100; i++)); do grep -q ready "$1" 2>/dev/null && return 0; pause 0.1; done
  echo "   not ready: $(cat "$1")"
}
cpu_jiffies() {
  local cpu user nice system idle iowait irq softirq steal rest
  read -r cpu user nice system idle iowait irq softirq steal rest </proc/stat
  echo "$((user + nice + system + irq + softirq + steal)) $((user + nice + system + idle + iowait + irq + softirq + steal))"
}
# measure_cpu FILE COMMAND...: runs COMMAND, then writes the guest's busy
# jiffies over it to FILE.
measure_cpu() {
  local f=$1 b0 t0 b1 t1
  shift
  read -r b0 t0 < <(cpu_jiffies)
  "$@"
  read -r b1 t1 < <(cpu_jiffies)
  echo "{\"busy_jiffies\": $((b1 - b0)), \"total_jiffies\": $((t1 - t0)), \"hz\": $(getconf CLK_TCK)}" >"$f"
}

# Each kind: round trips for every size, then streaming.
lib_udp() {
  local r=$1 size e
  (ul2 udp-echo 7100 --seconds 600) >/dev/null 2>"$res/lib-udp-echo.err" &
  e=$!
  ready "$res/lib-udp-echo.err"
  for size in $SIZES; do
    (ul1 udp-ping 10.81.0.2:7100 --size "$size" --count "$COUNT") >"$res/lib-udp-rtt-$size.r$r.json" 2>&1 \
      || echo "   lib udp $size: $(<"$res/lib-udp-rtt-$size.r$r.json")"
  done
  kill "$e"; wait "$e" 2>/dev/null
  # The same round trips, both ends busy-polling.
  (ul2 --busy-poll-us "$BUSY" udp-echo 7102 --seconds 600) >/dev/null 2>"$res/lib-udp-echo.err" &
  e=$!
  ready "$res/lib-udp-echo.err"
  for size in $SIZES; do
    (ul1 --busy-poll-us "$BUSY" udp-ping 10.81.0.2:7102 --size "$size" --count "$COUNT") \
      >"$res/lib-udp-bp-rtt-$size.r$r.json" 2>&1 || echo "   lib udp busy $size: $(<"$res/lib-udp-bp-rtt-$size.r$r.json")"
  done
  kill "$e"; wait "$e" 2>/dev/null
  (ul2 udp-sink 7101) >"$res/lib-udp-tput.r$r.json" 2>"$res/lib-udp-sink.err" &
  e=$!
  ready "$res/lib-udp-sink.err"
  measure_cpu "$res/lib-udp-cpu.r$r.json" ul1_sub udp-stream 10.81.0.2:7101 --size 1472 --seconds "$RUNTIME" >/dev/null
  wait "$e" || echo "   lib udp stream: $(cat "$res/lib-udp-tput.r$r.json" "$res/lib-udp-sink.err")"
}
lib_tcp() {
  local r=$1 size e port=7200
  local bp kind
  for bp in "" "--busy-poll-us $BUSY"; do
    kind=lib-tcp; [[ -n $bp ]] && kind=lib-tcp-bp
    for size in $SIZES; do
      port=$((port + 1))
      # shellcheck disable=SC2086
      (ul2 $bp tcp-echo "$port" --size "$size") >/dev/null 2>"$res/lib-tcp-echo.err" &
      e=$!
      ready "$res/lib-tcp-echo.err"
      # shellcheck disable=SC2086
      (ul1 $bp tcp-ping "10.81.0.2:$port" --size "$size" --count "$COUNT") >"$res/$kind-rtt-$size.r$r.json" 2>&1 \
        || echo "   $kind $size: $(<"$res/$kind-rtt-$size.r$r.json")"
      wait "$e" 2>/dev/null
    done
  done
  (ul2 tcp-sink 7300) >"$res/lib-tcp-tput.r$r.json" 2>"$res/lib-tcp-sink.err" &
  e=$!
  ready "$res/lib-tcp-sink.err"
  measure_cpu "$res/lib-tcp-cpu.r$r.json" ul1_sub tcp-stream 10.81.0.2:7300 --seconds "$RUNTIME" >/dev/null
  wait "$e" || echo "   lib tcp stream: $(cat "$res/lib-tcp-tput.r$r.json" "$res/lib-tcp-sink.err")"
}
kernel_udp() {
  local r=$1 size
  for size in $SIZES; do
    ip netns exec w1 sockperf ping-pong -i 10.81.0.2 -p 11111 -m "$size" -t 2 --full-rtt \
      >"$res/kernel-udp-rtt-$size.r$r.txt" 2>&1 || echo "   kernel udp $size: sockperf failed"
  done
  measure_cpu "$res/kernel-udp-cpu.r$r.json" ip netns exec w1 iperf3 -c 10.81.0.2 -p 5201 -u -b 0 -l 1472 \
    -t "$RUNTIME" -J >"$res/kernel-udp-tput.r$r.json" 2>&1
}
kernel_tcp() {
  local r=$1 size
  for size in $SIZES; do
    ip netns exec w1 sockperf ping-pong --tcp -i 10.81.0.2 -p 11112 -m "$size" -t 2 --full-rtt \
      >"$res/kernel-tcp-rtt-$size.r$r.txt" 2>&1 || echo "   kernel tcp $size: sockperf failed"
  done
  measure_cpu "$res/kernel-tcp-cpu.r$r.json" ip netns exec w1 iperf3 -c 10.81.0.2 -p 5201 -t "$RUNTIME" -J \
    >"$res/kernel-tcp-tput.r$r.json" 2>&1
}

kinds=(lib_udp kernel_udp lib_tcp kernel_tcp)
for ((r = 1; r <= ROUNDS; r++)); do
  order=("${kinds[@]:$(((r - 1) % 4))}" "${kinds[@]:0:$(((r - 1) % 4))}")
  echo "== round $r of $ROUNDS: ${order[*]}"
  for k in "${order[@]}"; do
    echo "   round $r: $k"
    "$k" "$r"
  done
done
