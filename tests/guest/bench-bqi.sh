#!/bin/bash
# Guest side of `make bench`, bqi section: raw frames user to user between
# two namespaces over one veth pair (MTU 9000), by BQI endpoints, AF_PACKET
# with a TPACKET_V3 ring and AF_XDP in copy mode (linkbench), and kernel UDP
# sockets (sockperf ping-pong for the round trip, udpflow for throughput).
# For each frame size: the round trip (ping-pong, percentiles) and one-way
# throughput (measured at the receiver), in interleaved rounds, each round
# starting with the next transport. Results go to $POLYNIC_OUT/bench/bqi/
# for scripts/bench_bqi_report.py.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROUNDS=${BENCH_ROUNDS:-3}
SECONDS_TPUT=${BQI_RUNTIME:-3}
COUNT=${BQI_PINGS:-1000}
SIZES=${BQI_SIZES:-64 1500 9000}
res="$POLYNIC_OUT/bench/bqi"
mkdir -p "$res"
rm -f "$res"/*
cleanup() {
  pkill sockperf
  pkill linkbench
  pkill udpflow
  ip netns del q1 2>/dev/null
  ip netns del q2 2>/dev/null
  rmmod bqi 2>/dev/null
  return 0
}
trap cleanup EXIT

lb() { "$POLYNIC_BIN/linkbench" "$@"; }
insmod "$(module_path bqi)" || fail "insmod bqi"
ip netns add q1 && ip netns add q2 || fail "netns"
ip link add qa netns q1 mtu 9000 type veth peer qb netns q2 mtu 9000 || fail "veth"
ip -n q1 addr add 10.79.0.1/24 dev qa && ip -n q1 link set qa up || fail "qa"
ip -n q2 addr add 10.79.0.2/24 dev qb && ip -n q2 link set qb up || fail "qb"
mac_b=$(ip netns exec q2 cat /sys/class/net/qb/address)
ip netns exec q1 ping -c 1 -W 2 10.79.0.2 >/dev/null || fail "link"
ip netns exec q2 sockperf server -i 10.79.0.2 -p 11111 >/dev/null 2>&1 &
echo "$SIZES" >"$res/sizes.txt"

# transport_args T SIDE: linkbench options for transport T on side 1 or 2.
transport_args() {
  case $1 in
    bqi) [[ $2 == 1 ]] && echo "--transport bqi --bqi 7 --peer 9" || echo "--transport bqi --bqi 9 --peer 7" ;;
    packet) echo "--transport packet" ;;
    xdp) echo "--transport xdp" ;;
  esac
}

# raw T SIZE ROUND: round trip and throughput of linkbench transport T.
raw() {
  local t=$1 size=$2 r=$3 a b
  read -ra a <<<"$(transport_args "$t" 1)"
  read -ra b <<<"$(transport_args "$t" 2)"
  ip netns exec q2 "$POLYNIC_BIN/linkbench" "${b[@]}" --dev qb echo --seconds 60 >"$res/$t-echo-$size.r$r.json" 2>&1 &
  local echo_pid=$!
  pause 1
  ip netns exec q1 "$POLYNIC_BIN/linkbench" "${a[@]}" --dev qa ping --dst "$mac_b" --size "$size" --count "$COUNT" \
    >"$res/$t-rtt-$size.r$r.json" 2>&1 || echo "   $t $size: ping failed: $(<"$res/$t-rtt-$size.r$r.json")"
  kill "$echo_pid" 2>/dev/null
  wait "$echo_pid" 2>/dev/null
  ip netns exec q2 "$POLYNIC_BIN/linkbench" "${b[@]}" --dev qb sink --seconds $((SECONDS_TPUT + 10)) \
    >"$res/$t-tput-$size.r$r.json" 2>&1 &
  local sink_pid=$!
  pause 1
  ip netns exec q1 "$POLYNIC_BIN/linkbench" "${a[@]}" --dev qa flood --dst "$mac_b" --size "$size" \
    --seconds "$SECONDS_TPUT" >"$res/$t-flood-$size.r$r.json" 2>&1 || echo "   $t $size: flood failed"
  wait "$sink_pid" || echo "   $t $size: sink failed: $(<"$res/$t-tput-$size.r$r.json")"
}

# udp SIZE ROUND: the kernel's UDP sockets, frames of SIZE bytes.
udp() {
  local size=$1 r=$2 payload=$(($1 - 42)) ippkt=$(($1 - 14))
  ip netns exec q1 sockperf ping-pong -i 10.79.0.2 -p 11111 -m "$payload" -t 2 --full-rtt \
    >"$res/udp-rtt-$size.r$r.txt" 2>&1 || echo "   udp $size: sockperf failed"
  ip netns exec q2 "$POLYNIC_BIN/udpflow" sink --bind 10.79.0.2:12000 --seconds $((SECONDS_TPUT + 10)) \
    >"$res/udp-tput-$size.r$r.json" 2>&1 &
  local sink_pid=$!
  pause 1
  ip netns exec q1 "$POLYNIC_BIN/udpflow" send --to 10.79.0.2:12000 --size "$ippkt" --seconds "$SECONDS_TPUT" \
    >"$res/udp-flood-$size.r$r.json" 2>&1 || echo "   udp $size: udpflow send failed"
  wait "$sink_pid" || echo "   udp $size: udpflow sink failed"
}

transports=(bqi packet xdp udp)
for ((r = 1; r <= ROUNDS; r++)); do
  order=("${transports[@]:$(((r - 1) % 4))}" "${transports[@]:0:$(((r - 1) % 4))}")
  echo "== round $r of $ROUNDS: ${order[*]}"
  for t in "${order[@]}"; do
    for size in $SIZES; do
      echo "   round $r: $t $size B"
      if [[ $t == udp ]]; then udp "$size" "$r"; else raw "$t" "$size" "$r"; fi
    done
  done
done
