#!/bin/bash
# The forwarding personality on a router whose NICs are capable (pnic
# pairs; the router's two NICs on one modelled bus): host A (fa) -- p0 --
# router (fr) -- p1 -- host B (fb), in each of the three paths.
# 1. header-copy (the default on a capable NIC), in-place, conventional:
#    ping, and 1 MiB through TCP whose sha256 matches; each path's bytes
#    are counted under it, and the bus saw peer transfers for the first two
#    and none for the last.
# 2. A route back out of the ingress NIC is a self transfer (no DMA of the
#    frame); the router's own address is the stack's. On the device paths,
#    TTL 1 reaches the stack (ICMP time exceeded), and a blackhole route and
#    a wrong neighbour take effect on the next packet.
# 3. A path through device memory is refused on a NIC that is not capable.
# 4. A busy egress (a third pair p2 to host B whose NICs have 16 KiB of
#    memory, the router's bus slowed to 1 MB/s, a UDP flood): frames wait
#    in the ingress NIC's memory and leave in order, a full backlog drops,
#    and afterwards nothing is left waiting.
# 5. The router's NIC pair removed under traffic, the module unloaded: no
#    oops, no leak (the harness checks).
source "${BASH_SOURCE[0]%/*}/../guest/lib.sh"
CFG=/sys/kernel/config
F=$CFG/fwd
P=$CFG/pnic
cleanup() {
  local d
  for d in "$F"/*/; do
    [[ -d $d ]] && rmdir "$d"
  done
  for d in "$P"/*/; do
    [[ -d $d ]] && { echo 0 >"$d/power"; rmdir "$d"; }
  done
  [[ -d $CFG/pnic_bus/fwdbus ]] && rmdir "$CFG/pnic_bus/fwdbus"
  ip netns del fa 2>/dev/null
  ip netns del fr 2>/dev/null
  ip netns del fb 2>/dev/null
  rmmod fwd 2>/dev/null
  rmmod pnic 2>/dev/null
  return 0
}
trap cleanup EXIT

fwdctl() { "$POLYNIC_BIN/fwdctl" "$@"; }

mountpoint -q $CFG || mount -t configfs none $CFG
insmod "$(module_path pnic)" || fail "insmod pnic"
insmod "$(module_path fwd)" || fail "insmod fwd"
ip netns add fa && ip netns add fr && ip netns add fb || fail "netns"
mkdir "$CFG/pnic_bus/fwdbus" || fail "mkdir bus"
# p0: a in host A, b in the router; p1: a in the router, b in host B. The
# router's NICs share the bus.
for pair in p0 p1; do
  mkdir "$P/$pair" && echo "${pair}a" >"$P/$pair/name_a" && echo "${pair}b" >"$P/$pair/name_b" || fail "$pair"
done
echo fwdbus >"$P/p0/bus_b" && echo fwdbus >"$P/p1/bus_a" || fail "buses"
echo 1 >"$P/p0/power" && echo 1 >"$P/p1/power" || fail "power on"
printf '%s\n' "link set p0a netns fa" "link set p0b netns fr" "link set p1a netns fr" "link set p1b netns fb" |
  ip -b - || fail "into the namespaces"
printf '%s\n' "link set lo up" "addr add 10.89.1.1/24 dev p0b" "addr add 10.89.2.1/24 dev p1a" \
  "link set p0b up" "link set p1a up" | ip -n fr -b - || fail "router addresses"
printf '%s\n' "link set lo up" "addr add 10.89.1.2/24 dev p0a" "link set p0a up" \
  "route add default via 10.89.1.1" | ip -n fa -b - || fail "host A"
printf '%s\n' "link set lo up" "addr add 10.89.2.2/24 dev p1b" "link set p1b up" \
  "route add default via 10.89.2.1" | ip -n fb -b - || fail "host B"
ip netns exec fr sysctl -qw net.ipv4.ip_forward=1 || fail "ip_forward"

fwdctl --netns fr attach p0b >/dev/null || fail "attach p0b"
fwdctl --netns fr attach p1a >/dev/null || fail "attach p1a"
[[ $(<"$F/p0b/mode") == header-copy ]] || fail "a capable NIC did not default to header-copy: $(<"$F/p0b/mode")"

head -c $((1 << 20)) /dev/urandom >/tmp/fwdp-1m
want=$(sha256sum </tmp/fwdp-1m)

# 1. Each path: ping, 1 MiB checksummed, counted under the path.
port=5010
for mode in header-copy in-place conventional; do
  fwdctl mode p0b "$mode" && fwdctl mode p1a "$mode" || fail "mode $mode"
  echo 0 >"$F/p0b/counters"
  echo 0 >"$CFG/pnic_bus/fwdbus/stats"
  ip netns exec fa ping -c 2 -i 0.2 -W 5 10.89.2.2 >/dev/null || fail "$mode: ping A to B"
  ip netns exec fb socat -u TCP-LISTEN:$port,reuseaddr SYSTEM:"sha256sum >/tmp/fwdp.sum" &
  listener=$!
  pause 1
  ip netns exec fa socat -u FILE:/tmp/fwdp-1m TCP:10.89.2.2:$port,retry=5 || fail "$mode: 1 MiB send"
  wait "$listener" || fail "$mode: 1 MiB receive"
  [[ $(</tmp/fwdp.sum) == "$want" ]] || fail "$mode: 1 MiB arrived changed"
  forwarded=$(kv "$F/p0b/counters" "forwarded.$mode")
  bytes=$(kv "$F/p0b/counters" "forwarded_bytes.$mode")
  # The conventional path sees GRO-merged packets: count bytes, not packets.
  ((bytes >= 1 << 20)) || fail "$mode: only $bytes bytes forwarded A to B under $mode"
  peer=$(kv "$CFG/pnic_bus/fwdbus/stats" peer.transactions)
  if [[ $mode == conventional ]]; then
    ((peer == 0)) || fail "conventional: $peer peer transfers on the bus"
  else
    ((peer >= forwarded)) || fail "$mode: $peer peer transfers for $forwarded forwarded packets"
  fi
  echo "$mode: $forwarded packets ($bytes bytes) A to B, $peer peer transfers on the bus, sha256 matches"
  port=$((port + 1))
done
rm -f /tmp/fwdp-1m /tmp/fwdp.sum

# 2. Back out of the ingress NIC: a self transfer. The next hop is host A's
# own address under another name, so A receives its own packet back.
fwdctl mode p0b header-copy || fail "header-copy again"
ip -n fr route add 10.89.9.0/24 via 10.89.1.2 || fail "hairpin route"
self=$(kv "$P/p0/stats" b.self_transfers)
ip netns exec fa ping -c 3 -i 0.2 -W 1 10.89.9.9 >/dev/null 2>&1
(($(kv "$P/p0/stats" b.self_transfers) >= self + 3)) || fail "a hairpin route made no self transfers"
ip netns exec fa ping -c 1 -W 5 10.89.1.1 >/dev/null || fail "ping to the router over a claimed NIC"
(($(kv "$F/p0b/counters" to_stack.local) >= 1)) || fail "ping to the router not handed to the stack"
echo "hairpin forwarded by self transfer; the router answers its own address"
for mode in in-place header-copy; do
  fwdctl mode p0b "$mode" || fail "mode $mode for TTL 1"
  out=$(ip netns exec fa ping -c 1 -t 1 -W 5 10.89.2.2 2>&1)
  [[ $out == *"Time to live exceeded"* ]] || fail "$mode: TTL 1 did not give ICMP time exceeded: $out"
done
(($(kv "$F/p0b/counters" to_stack.ttl_expired) >= 2)) || fail "TTL 1 not counted on the device paths"
ip -n fr route add blackhole 10.89.2.2/32 || fail "blackhole route"
! ip netns exec fa ping -c 1 -W 1 10.89.2.2 >/dev/null 2>&1 || fail "header-copy forwarded past a blackhole route"
ip -n fr route del blackhole 10.89.2.2/32
mac_b=$(ip netns exec fb cat /sys/class/net/p1b/address)
ip -n fr neigh replace 10.89.2.2 lladdr 02:00:00:00:00:99 dev p1a nud permanent || fail "wrong neighbour"
! ip netns exec fa ping -c 1 -W 1 10.89.2.2 >/dev/null 2>&1 || fail "header-copy ignored a changed neighbour"
ip -n fr neigh replace 10.89.2.2 lladdr "$mac_b" dev p1a nud reachable || fail "right neighbour"
ip netns exec fa ping -c 1 -W 5 10.89.2.2 >/dev/null || fail "header-copy: no forwarding after the tables were restored"
(($(kv "$F/p0b/counters" to_stack.no_route) >= 1)) || fail "blackholed packet not counted on the device path"
echo "device paths: TTL 1 answered by the stack; route and neighbour changes took effect on the next packet"

# 3. A NIC that is not capable keeps the conventional path.
ip -n fr link add vfr type veth peer name vfr1 || fail "veth"
fwdctl --netns fr attach vfr >/dev/null || fail "attach veth"
[[ $(<"$F/vfr/mode") == conventional ]] || fail "veth did not default to conventional"
out=$(fwdctl mode vfr in-place 2>&1) && fail "in-place accepted on veth"
[[ $out == *"not available on this device"* ]] || fail "unclear refusal: $out"
fwdctl detach vfr || fail "detach veth"

# 4. A busy egress.
mkdir "$P/p2" && echo p2a >"$P/p2/name_a" && echo p2b >"$P/p2/name_b" && echo 16 >"$P/p2/mem_kib" &&
  echo fwdbus >"$P/p2/bus_a" && echo 1 >"$P/p2/power" || fail "pair p2"
printf '%s\n' "link set p2a netns fr" "link set p2b netns fb" | ip -b - || fail "p2 into the namespaces"
ip -n fr addr add 10.89.3.1/24 dev p2a && ip -n fr link set p2a up || fail "router on p2"
ip -n fb addr add 10.89.3.2/24 dev p2b && ip -n fb link set p2b up || fail "host B on p2"
ip netns exec fa ping -c 1 -W 5 10.89.3.2 >/dev/null || fail "no path to host B over p2"
echo 0 >"$F/p0b/counters"
bw=$(<"$CFG/pnic_bus/fwdbus/bandwidth_bps")
echo 1000000 >"$CFG/pnic_bus/fwdbus/bandwidth_bps" || fail "slowing the bus"
rm -f /tmp/fwdp-ready
ip netns exec fb "$POLYNIC_BIN/udpflow" sink --bind 10.89.3.2:9100 --flow 7 --seconds 60 --idle 2 \
  --ready /tmp/fwdp-ready >/tmp/fwdp-sink.json &
sink=$!
for _ in $(seq 100); do [[ -e /tmp/fwdp-ready ]] && break; sleep 0.1; done
[[ -e /tmp/fwdp-ready ]] || fail "the UDP sink never listened"
ip netns exec fa "$POLYNIC_BIN/udpflow" send --to 10.89.3.2:9100 --flow 7 --size 1400 --seconds 2 \
  >/tmp/fwdp-send.json || fail "UDP flood"
wait "$sink" || fail "UDP sink"
echo "$bw" >"$CFG/pnic_bus/fwdbus/bandwidth_bps" || fail "restoring the bus"
read -r received reordered duplicates corrupt < <(python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(d["received"], d["reordered"], d["duplicates"], d["corrupt"])' /tmp/fwdp-sink.json) || fail "sink report"
held=$(kv "$F/p0b/counters" held)
full=$(kv "$F/p0b/counters" dropped.backlog_full)
((held > 0)) || fail "no frame waited for the busy egress: $(grep -v ' 0$' "$F/p0b/counters" | paste -sd' ')"
((received > 0)) || fail "nothing crossed the busy router"
((reordered == 0 && duplicates == 0 && corrupt == 0)) ||
  fail "held frames left out of order or changed: $reordered reordered, $duplicates twice, $corrupt changed"
# Nothing stays behind: the ingress's receive memory and the egress's
# transmit memory drain once the flood ends.
for _ in $(seq 100); do
  (($(kv "$P/p0/stats" b.mem.rx.used) == 0 && $(kv "$P/p2/stats" a.mem.tx.used) == 0)) && break
  sleep 0.1
done
(($(kv "$P/p0/stats" b.mem.rx.used) == 0)) || fail "frames left in the ingress NIC's memory"
(($(kv "$P/p2/stats" a.mem.tx.used) == 0)) || fail "frames left in the egress NIC's memory"
echo "busy egress: $held frames held in the ingress NIC, $full dropped from a full backlog, $received delivered in order"
rm -f /tmp/fwdp-ready /tmp/fwdp-sink.json /tmp/fwdp-send.json

# 5. Removal under traffic.
ip netns exec fa ping -f -s 1000 -w 30 10.89.2.2 >/dev/null 2>&1 &
flood=$!
pause 1
echo 0 >"$P/p1/power" || fail "power off p1 under traffic"
[[ $(<"$F/p1a/attached") == 0 ]] || fail "p1a still attached after its pair went"
kill "$flood" 2>/dev/null
wait "$flood"
rmdir "$F/p0b" "$F/p1a" || fail "detach"
rmmod fwd || fail "rmmod fwd"
echo "router NIC removed under traffic, module unloaded"
