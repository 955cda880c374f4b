#!/bin/bash
# The forwarding personality on a router between two hosts, over veth
# (the conventional path): host A (fa) -- router (fr) -- host B (fb).
# 1. Attaching: a missing device and a second attach are refused clearly.
# 2. Forwarded by the fast path: ping, iperf3 TCP and UDP, 64 MiB through
#    TCP whose sha256 matches; the router's own personality keeps working
#    (ARP, ping to its addresses).
# 3. What the stack must handle goes to it and it does what Linux does:
#    TTL 1 gives ICMP time exceeded, a packet over the egress MTU with DF
#    gives fragmentation needed.
# 4. Route, neighbour and forwarding-sysctl changes take effect on the next
#    packet.
# 5. 100 000 malformed IPv4 frames: none forwarded, each counted by reason.
# 6. A device deleted during traffic, the router detached during traffic,
#    the module unloaded: no oops, no leak (the harness checks).
source "${BASH_SOURCE[0]%/*}/../guest/lib.sh"
CFG=/sys/kernel/config
F=$CFG/fwd
cleanup() {
  local d
  for d in "$F"/*/; do
    [[ -d $d ]] && rmdir "$d"
  done
  ip netns del fa 2>/dev/null
  ip netns del fr 2>/dev/null
  ip netns del fb 2>/dev/null
  rmmod fwd 2>/dev/null
  return 0
}
trap cleanup EXIT

# fwdctl enters the namespace itself (`ip netns exec` remounts /sys without
# configfs).
fwdctl() { "$POLYNIC_BIN/fwdctl" "$@"; }

# counter DEV NAME: one counter of an attached device.
counter() { kv "$F/$1/counters" "$2"; }

# Three namespaces, one ip batch each (every process costs seconds here).
ip netns add fa && ip netns add fr && ip netns add fb || fail "netns"
printf '%s\n' "link add fr0 netns fr type veth peer name fa0 netns fa" \
  "link add fr1 netns fr type veth peer name fb0 netns fb" | ip -b - || fail "veth pairs"
printf '%s\n' "link set lo up" "addr add 10.88.1.1/24 dev fr0" "addr add 10.88.2.1/24 dev fr1" \
  "link set fr0 up" "link set fr1 up" | ip -n fr -b - || fail "router addresses"
printf '%s\n' "link set lo up" "addr add 10.88.1.2/24 dev fa0" "link set fa0 up" \
  "route add default via 10.88.1.1" | ip -n fa -b - || fail "host A"
printf '%s\n' "link set lo up" "addr add 10.88.2.2/24 dev fb0" "link set fb0 up" \
  "route add default via 10.88.2.1" | ip -n fb -b - || fail "host B"
ip netns exec fr sysctl -qw net.ipv4.ip_forward=1 || fail "ip_forward"

mountpoint -q $CFG || mount -t configfs none $CFG
insmod "$(module_path fwd)" || fail "insmod fwd"

# 1. Attaching.
out=$(fwdctl --netns fr attach nosuchdev 2>&1) && fail "attached to a missing device"
[[ $out == *"no such net device"* ]] || fail "unclear error for a missing device: $out"
fwdctl --netns fr attach fr0 >/dev/null || fail "attach fr0"
fwdctl --netns fr attach fr1 >/dev/null || fail "attach fr1"
out=$(fwdctl --netns fr attach fr0 2>&1) && fail "attached twice"
[[ $out == *"attached to \"fr0\" already"* ]] || fail "unclear error for a second attach: $out"
! echo header-copy >"$F/fr0/mode" 2>/dev/null || fail "a device-memory path accepted on veth"
[[ $(<"$F/fr0/mode") == conventional && $(<"$F/fr0/attached") == 1 ]] || fail "mode or attached wrong"

# 2. The fast path forwards; the router's own personality still works.
# The first request finds no neighbour entry for B: the stack resolves it
# and forwards that one; the fast path takes the rest.
ip netns exec fa ping -c 3 -i 0.2 -W 5 10.88.2.2 >/dev/null || fail "ping A to B through the router"
(($(counter fr0 forwarded.conventional) >= 2)) || fail "requests not forwarded by the fast path"
(($(counter fr0 to_stack.no_neighbour) >= 1)) || fail "the unresolved neighbour was not left to the stack"
(($(counter fr1 forwarded.conventional) >= 2)) || fail "replies not forwarded by the fast path"
ip netns exec fa ping -c 2 -i 0.2 -W 5 10.88.1.1 >/dev/null || fail "ping to the router's own address"
ip netns exec fa ping -c 1 -W 5 10.88.2.1 >/dev/null || fail "ping to the router's far address"
(($(counter fr0 to_stack.local) >= 3)) || fail "pings to the router not passed to the stack"
(($(counter fr0 to_stack.not_ipv4) >= 1)) || fail "ARP not passed to the stack"

ip netns exec fb iperf3 -s -D -p 5201 >/dev/null 2>&1
pause 1
before=$(counter fr0 forwarded.conventional)
received=$(ip netns exec fr cat /sys/class/net/fr0/statistics/rx_packets)
report=$(ip netns exec fa iperf3 -c 10.88.2.2 -p 5201 -t 3 -f k 2>&1) || fail "iperf3 TCP: $report"
[[ $report =~ ([0-9.]+)\ Kbits/sec[^$'\n']*receiver ]] || fail "iperf3 TCP reported no receiver rate: $report"
echo "iperf3 TCP through the router: ${BASH_REMATCH[1]} Kbit/s"
report=$(ip netns exec fa iperf3 -c 10.88.2.2 -p 5201 -u -b 20M -l 1200 -t 2 -f k 2>&1) || fail "iperf3 UDP: $report"
[[ $report =~ ([0-9.]+)\ Kbits/sec[^$'\n']*receiver ]] || fail "iperf3 UDP reported no receiver rate: $report"
echo "iperf3 UDP through the router: ${BASH_REMATCH[1]} Kbit/s"
forwarded=$(($(counter fr0 forwarded.conventional) - before))
received=$(($(ip netns exec fr cat /sys/class/net/fr0/statistics/rx_packets) - received))
# All but a few (ARP, the first packet to an unresolved neighbour) take the
# fast path.
((forwarded > 100 && forwarded * 10 >= received * 9)) ||
  fail "the fast path forwarded $forwarded of the $received packets the router received from A"
echo "iperf3: $forwarded of $received packets from A forwarded by the fast path"

head -c $((1 << 20)) /dev/urandom >/tmp/fwd-1m
files=()
for ((i = 0; i < 64; i++)); do files+=(/tmp/fwd-1m); done
cat "${files[@]}" >/tmp/fwd-64m
want=$(sha256sum </tmp/fwd-64m)
ip netns exec fb socat -u TCP-LISTEN:5001,reuseaddr SYSTEM:"sha256sum >/tmp/fwd-64m.sum" &
listener=$!
pause 1
ip netns exec fa socat -u FILE:/tmp/fwd-64m TCP:10.88.2.2:5001,retry=5 || fail "64 MiB send"
wait "$listener" || fail "64 MiB receive"
[[ $(</tmp/fwd-64m.sum) == "$want" ]] || fail "64 MiB arrived changed"
rm -f /tmp/fwd-1m /tmp/fwd-64m /tmp/fwd-64m.sum
echo "64 MiB through the router, sha256 matches; $(counter fr0 forwarded.conventional) packets forwarded A to B"

# 3. The stack's cases.
out=$(ip netns exec fa ping -c 1 -t 1 -W 5 10.88.2.2 2>&1)
[[ $out == *"Time to live exceeded"* ]] || fail "TTL 1 did not give ICMP time exceeded: $out"
(($(counter fr0 to_stack.ttl_expired) >= 1)) || fail "TTL 1 not counted"
ip -n fr link set fr1 mtu 1000 || fail "mtu 1000"
out=$(ip netns exec fa ping -c 1 -s 1200 -M do -W 5 10.88.2.2 2>&1)
ip -n fr link set fr1 mtu 1500
[[ $out == *"Frag needed"* || $out == *"mtu = 1000"* ]] || fail "DF over the egress MTU did not give fragmentation needed: $out"
(($(counter fr0 to_stack.too_big) >= 1)) || fail "too big not counted"
echo "TTL expiry and DF over the MTU answered by the stack"

# 4. Table changes take effect on the next packet.
ip -n fr route add blackhole 10.88.2.2/32 || fail "blackhole route"
! ip netns exec fa ping -c 1 -W 1 10.88.2.2 >/dev/null 2>&1 || fail "forwarded past a blackhole route"
(($(counter fr0 to_stack.no_route) >= 1)) || fail "blackholed packet not counted"
ip -n fr route del blackhole 10.88.2.2/32
ip netns exec fa ping -c 1 -W 5 10.88.2.2 >/dev/null || fail "no forwarding after the route came back"
mac_b=$(ip netns exec fb cat /sys/class/net/fb0/address)
ip -n fr neigh replace 10.88.2.2 lladdr 02:00:00:00:00:99 dev fr1 nud permanent || fail "wrong neighbour"
! ip netns exec fa ping -c 1 -W 1 10.88.2.2 >/dev/null 2>&1 || fail "a changed neighbour address was not used"
ip -n fr neigh replace 10.88.2.2 lladdr "$mac_b" dev fr1 nud reachable || fail "right neighbour"
ip netns exec fa ping -c 1 -W 5 10.88.2.2 >/dev/null || fail "no forwarding after the neighbour was corrected"
ip netns exec fr sysctl -qw net.ipv4.conf.fr0.forwarding=0
! ip netns exec fa ping -c 1 -W 1 10.88.2.2 >/dev/null 2>&1 || fail "forwarded with forwarding off"
(($(counter fr0 to_stack.forwarding_off) >= 1)) || fail "forwarding off not counted"
ip netns exec fr sysctl -qw net.ipv4.conf.fr0.forwarding=1
ip netns exec fa ping -c 1 -W 5 10.88.2.2 >/dev/null || fail "no forwarding after forwarding came back on"
echo "route, neighbour and sysctl changes took effect on the next packet"

# 5. Hostile frames, 20 000 of each malformation, sent in bulk by
# `inject` (sendmmsg on a packet socket; a Python loop took minutes here).
echo 0 >"$F/fr0/counters"
router_mac=$(ip netns exec fr cat /sys/class/net/fr0/address)
a_mac=$(ip netns exec fa cat /sys/class/net/fa0/address)
eth=${router_mac//:/}${a_mac//:/}0800
# IPv4 from the identification field on: id 1, no fragment, TTL 64, UDP,
# checksum 0, 10.88.1.2 to 10.88.2.2; then 28 bytes of payload.
rest=0001000040110000""0a5801020a580202
payload=$(printf '00%.0s' {1..28})
truncated=${eth}450000300001000040110000
version=${eth}65000030${rest}${payload}
header_length=${eth}43000030${rest}${payload}
total_length=${eth}45000578${rest}${payload}
checksum=${eth}45000030${rest}${payload}
dropped0=$(ip netns exec fa cat /sys/class/net/fa0/statistics/tx_dropped)
# Two senders, one per CPU: each frame costs milliseconds in this guest, and
# veth has the receiving side run on the sender's CPU.
frames=("$truncated" "$version" "$header_length" "$total_length" "$checksum")
taskset -c 0 "$POLYNIC_BIN/inject" --netns fa --dev fa0 --count 50000 "${frames[@]}" >/tmp/fwd-inject0 &
first=$!
taskset -c 1 "$POLYNIC_BIN/inject" --netns fa --dev fa0 --count 50000 "${frames[@]}" >/tmp/fwd-inject1 ||
  fail "sending malformed frames"
wait "$first" || fail "sending malformed frames"
[[ $(</tmp/fwd-inject0) == 50000 && $(</tmp/fwd-inject1) == 50000 ]] || fail "inject sent too few frames"
rm -f /tmp/fwd-inject0 /tmp/fwd-inject1
# veth drops a frame only when the router's receive backlog is full; those
# never reached the router and are counted on A's side.
lost=$(($(ip netns exec fa cat /sys/class/net/fa0/statistics/tx_dropped) - dropped0))
total=0
for k in truncated version header_length total_length checksum; do
  got=$(counter fr0 "malformed.$k")
  ((got + lost >= 20000 && got <= 20000)) || fail "malformed.$k is $got of 20000 sent ($lost lost on the link)"
  total=$((total + got))
done
((total + lost == 100000)) || fail "$total malformed frames counted and $lost lost on the link, of 100000 sent"
[[ $(counter fr0 forwarded.conventional) == 0 ]] || fail "a malformed frame was forwarded"
ip netns exec fa ping -c 1 -W 5 10.88.2.2 >/dev/null || fail "no forwarding after the malformed frames"
echo "100000 malformed frames: $total dropped and counted by reason, $lost lost on the link; forwarding goes on"

# 6. Removal under traffic.
ip netns exec fa ping -f -s 1000 -w 30 10.88.2.2 >/dev/null 2>&1 &
flood=$!
pause 1
ip -n fr link del fr1 || fail "delete fr1 during traffic"
[[ $(<"$F/fr1/attached") == 0 ]] || fail "fr1 still attached after it was deleted"
fwdctl show fr1 | grep -q "device gone" || fail "fwdctl does not say fr1 is gone"
rmdir "$F/fr1" || fail "detach the deleted fr1"
rmdir "$F/fr0" || fail "detach fr0 during traffic"
kill "$flood" 2>/dev/null
wait "$flood"
rmmod fwd || fail "rmmod fwd"
echo "device deleted and router detached under traffic, module unloaded"
