#!/bin/bash
# User-level UDP and TCP (bqi-net, smoltcp over a BQI endpoint) against the
# kernel's own sockets, over a veth pair between namespaces ua (the library
# side, with the registry) and ub (the kernel side):
# 1. UDP request/response both ways: library pings a kernel echo, a kernel
#    client pings a library echo.
# 2. TCP, 256 MiB each way with matching SHA-256: library client to a kernel
#    server and back, kernel client to a library server and back; then
#    each way again under netem loss, duplication and reordering.
# 3. 64 connections at once, to a library server and from a library client.
# 4. Two library applications on one host: no crossing of data.
# 5. Connection ends: refused, reset by the peer, the application killed
#    mid-transfer as client and as server (the registry resets its
#    connections; the kernel peer sees the reset at once).
# 6. Errors: no registry, port in use, no rights, the device deleted under
#    a transfer; each reported as itself, none hangs.
# timeout: 900
source "${BASH_SOURCE[0]%/*}/../guest/lib.sh"
nc="$POLYNIC_BIN/bqi-nc"
REG=/tmp/ul-registry.sock
cleanup() {
  [[ -n ${registry:-} ]] && kill "$registry" 2>/dev/null && wait "$registry" 2>/dev/null
  pkill -f "socat.*10.67" 2>/dev/null
  pkill -f kernel_peer.py 2>/dev/null
  ip netns del ua 2>/dev/null
  ip netns del ub 2>/dev/null
  rmmod bqi 2>/dev/null
  rm -f /tmp/ul-*
  return 0
}
trap cleanup EXIT

insmod "$(module_path bqi)" || fail "insmod bqi"
ip netns add ua && ip netns add ub || fail "netns"
ip link add va netns ua mtu 9000 type veth peer vb netns ub mtu 9000 || fail "veth"
ip -n ua addr add 10.67.0.1/24 dev va && ip -n ua link set va up && ip -n ua link set lo up || fail "va"
ip -n ub addr add 10.67.0.2/24 dev vb && ip -n ub link set vb up && ip -n ub link set lo up || fail "vb"
in_a() { ip netns exec ua "$@"; }
in_b() { ip netns exec ub "$@"; }
(exec ip netns exec ua "$POLYNIC_BIN/bqi-registry" serve --socket "$REG" --quiet-time 2 >/tmp/ul-reg.out 2>/tmp/ul-reg.err) &
registry=$!
for ((i = 0; i < 50; i++)); do [[ -S $REG ]] && break; pause 0.1; done
[[ -S $REG ]] || fail "registry did not start: $(</tmp/ul-reg.err)"
lib() { in_a "$nc" --registry "$REG" --dev va "$@"; }
# ready FILE WHAT: waits (30 s at most) until a library server said WHAT.
ready() {
  local i
  for ((i = 0; i < 300; i++)); do grep -q "$2" "$1" 2>/dev/null && return 0; pause 0.1; done
  fail "not ready: $(cat "$1")"
}

# 1. UDP.
in_b socat UDP4-RECVFROM:7000,fork PIPE &
pause 0.5
out=$(lib udp-ping 10.67.0.2:7000 --count 50 --size 1400) || fail "library UDP ping of a kernel echo: $out"
echo "UDP: library to kernel echo: $out"
lib udp-echo 7001 --count 20 >/tmp/ul-echo.json 2>/tmp/ul-echo.err &
echo_pid=$!
ready /tmp/ul-echo.err "echoing on"
for ((i = 0; i < 20; i++)); do
  reply=$(echo "request $i" | in_b socat -T 3 - UDP4:10.67.0.1:7001) || fail "kernel UDP client, datagram $i"
  [[ $reply == "request $i" ]] || fail "kernel UDP client, datagram $i: answer '$reply'"
done
wait "$echo_pid" || fail "library UDP echo: $(cat /tmp/ul-echo.json /tmp/ul-echo.err)"
echo "UDP: 20 kernel datagrams echoed by the library"

# 2. TCP, 256 MiB each way.
head -c 256M /dev/urandom >/tmp/ul-data || fail "test data"
want=$(sha256sum </tmp/ul-data | cut -d' ' -f1)
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

# Library client to a kernel server.
in_b socat -u TCP4-LISTEN:6001,reuseaddr SYSTEM:"sha256sum >/tmp/ul-k1.sum" &
k=$!
pause 0.5
out=$(lib connect 10.67.0.2:6001 --file /tmp/ul-data) || fail "library client sending: $out"
wait "$k" || fail "kernel server receiving"
[[ $(cut -d' ' -f1 </tmp/ul-k1.sum) == "$want" ]] || fail "256 MiB library to kernel arrived changed"
echo "TCP: 256 MiB library client -> kernel server, sha256 matches ($(field "$out" seconds) s)"

# Kernel server to a library client.
in_b socat -u FILE:/tmp/ul-data TCP4-LISTEN:6002,reuseaddr &
k=$!
pause 0.5
out=$(lib connect 10.67.0.2:6002) || fail "library client receiving: $out"
wait "$k" || fail "kernel server sending"
[[ $(field "$out" sha256) == "$want" && $(field "$out" received) == 268435456 ]] || fail "256 MiB kernel to library: $out"
echo "TCP: 256 MiB kernel server -> library client, sha256 matches ($(field "$out" seconds) s)"

# Kernel client to a library server.
lib listen 6003 >/tmp/ul-s3.json 2>/tmp/ul-s3.err &
s=$!
ready /tmp/ul-s3.err "listening on"
in_b socat -u FILE:/tmp/ul-data TCP4:10.67.0.1:6003 || fail "kernel client sending"
wait "$s" || fail "library server receiving: $(cat /tmp/ul-s3.json /tmp/ul-s3.err)"
out=$(</tmp/ul-s3.json)
[[ $(field "$out" sha256) == "$want" ]] || fail "256 MiB kernel client to library server: $out"
echo "TCP: 256 MiB kernel client -> library server, sha256 matches ($(field "$out" seconds) s)"

# Library server to a kernel client.
lib listen 6004 --file /tmp/ul-data >/tmp/ul-s4.json 2>/tmp/ul-s4.err &
s=$!
ready /tmp/ul-s4.err "listening on"
in_b socat -u TCP4:10.67.0.1:6004 SYSTEM:"sha256sum >/tmp/ul-k4.sum" || fail "kernel client receiving"
wait "$s" || fail "library server sending: $(cat /tmp/ul-s4.json /tmp/ul-s4.err)"
[[ $(cut -d' ' -f1 </tmp/ul-k4.sum) == "$want" ]] || fail "256 MiB library server to kernel client arrived changed"
echo "TCP: 256 MiB library server -> kernel client, sha256 matches ($(field "$(</tmp/ul-s4.json)" seconds) s)"

# The same under netem on both sides: loss, duplication, reordering.
in_a tc qdisc add dev va root netem delay 1ms reorder 75% 50% loss 0.5% duplicate 0.5% || fail "netem on va"
in_b tc qdisc add dev vb root netem delay 1ms reorder 75% 50% loss 0.5% duplicate 0.5% || fail "netem on vb"
in_b socat -u TCP4-LISTEN:6005,reuseaddr SYSTEM:"sha256sum >/tmp/ul-k5.sum" &
k=$!
pause 0.5
out=$(lib connect 10.67.0.2:6005 --file /tmp/ul-data) || fail "library client sending under netem: $out"
wait "$k" || fail "kernel server receiving under netem"
[[ $(cut -d' ' -f1 </tmp/ul-k5.sum) == "$want" ]] || fail "256 MiB library to kernel under netem arrived changed"
echo "netem: 256 MiB library client -> kernel server, sha256 matches ($(field "$out" seconds) s)"
lib listen 6006 >/tmp/ul-s6.json 2>/tmp/ul-s6.err &
s=$!
ready /tmp/ul-s6.err "listening on"
in_b socat -u FILE:/tmp/ul-data TCP4:10.67.0.1:6006 || fail "kernel client sending under netem"
wait "$s" || fail "library server receiving under netem: $(cat /tmp/ul-s6.json /tmp/ul-s6.err)"
out=$(</tmp/ul-s6.json)
[[ $(field "$out" sha256) == "$want" ]] || fail "256 MiB kernel client to library server under netem: $out"
echo "netem: 256 MiB kernel client -> library server, sha256 matches ($(field "$out" seconds) s)"
in_a tc qdisc del dev va root && in_b tc qdisc del dev vb root || fail "netem off"

# 3. Many connections at once, both ways: 64 kernel clients to a library
# server, and a library client with 64 connections to a kernel server, each
# connection 1 MiB whose SHA-256 must match.
peer="${BASH_SOURCE[0]%/*}/../guest/kernel_peer.py"
head -c 1M /dev/urandom >/tmp/ul-1m
want1=$(sha256sum </tmp/ul-1m | cut -d' ' -f1)
lib listen 6010 --connections 64 >/tmp/ul-many-s.json 2>/tmp/ul-many-s.err &
s=$!
ready /tmp/ul-many-s.err "listening on"
in_b timeout 300 python3 "$peer" source 10.67.0.1 6010 64 /tmp/ul-1m >/tmp/ul-many-k.json || fail "64 kernel clients"
wait "$s" || fail "library server, 64 connections: $(tail -3 /tmp/ul-many-s.json; cat /tmp/ul-many-s.err)"
[[ $(grep -c "\"sha256\":\"$want1\"" /tmp/ul-many-s.json) == 64 ]] || fail "64 connections to the library server: $(grep -v "$want1" /tmp/ul-many-s.json | head -3)"
echo "TCP: 64 kernel clients at once to a library server, 1 MiB each, every sha256 matches"
in_b timeout 300 python3 "$peer" sink 10.67.0.2 6011 64 >/tmp/ul-many-k2.json 2>/tmp/ul-many-k2.err &
k=$!
ready /tmp/ul-many-k2.err listening
lib connect 10.67.0.2:6011 --connections 64 --file /tmp/ul-1m >/tmp/ul-many-c.json || fail "library client, 64 connections: $(grep error /tmp/ul-many-c.json | head -3)"
wait "$k" || fail "kernel sink for 64"
[[ $(grep -c "\"sha256\": \"$want1\"" /tmp/ul-many-k2.json) == 64 ]] || fail "64 library connections to a kernel server: $(grep -v "$want1" /tmp/ul-many-k2.json | head -3)"
echo "TCP: a library client with 64 connections at once to a kernel server, every sha256 matches"

# 4. Two library applications on one host, each with its own connections,
# fed different data at once: each gets only its own.
head -c 8M /dev/urandom >/tmp/ul-8a
head -c 8M /dev/urandom >/tmp/ul-8b
wa=$(sha256sum </tmp/ul-8a | cut -d' ' -f1)
wb=$(sha256sum </tmp/ul-8b | cut -d' ' -f1)
lib listen 6020 --connections 4 >/tmp/ul-2a.json 2>/tmp/ul-2a.err &
sa=$!
lib listen 6021 --connections 4 >/tmp/ul-2b.json 2>/tmp/ul-2b.err &
sb=$!
ready /tmp/ul-2a.err "listening on"
ready /tmp/ul-2b.err "listening on"
in_b timeout 300 python3 "$peer" source 10.67.0.1 6020 4 /tmp/ul-8a >/tmp/ul-2ka.json &
ka=$!
in_b timeout 300 python3 "$peer" source 10.67.0.1 6021 4 /tmp/ul-8b >/tmp/ul-2kb.json &
kb=$!
wait "$ka" && wait "$kb" || fail "kernel clients of two applications"
wait "$sa" && wait "$sb" || fail "two library applications: $(cat /tmp/ul-2a.json /tmp/ul-2a.err /tmp/ul-2b.json /tmp/ul-2b.err); kernel clients: $(cat /tmp/ul-2ka.json /tmp/ul-2kb.json)"
[[ $(grep -c "$wa" /tmp/ul-2a.json) == 4 && $(grep -c "$wb" /tmp/ul-2b.json) == 4 ]] || fail "data crossed between applications: $(cat /tmp/ul-2a.json /tmp/ul-2b.json)"
echo "two library applications, 4 connections each at once: each got only its own data"

# 5. Ends of connections: refused, reset by the peer, the application
# killed mid-transfer (the registry resets its connections: the peer sees
# a reset at once), in both roles.
out=$(lib connect 10.67.0.2:6099 2>&1) && fail "connected to a closed port: $out"
[[ $out == *"refused"* ]] || fail "connect to a closed port: $out"
echo "connect to a closed kernel port: refused"
in_b timeout 300 python3 "$peer" sink 10.67.0.2 6030 1 --reset-after 1000000 >/tmp/ul-rst.json 2>/tmp/ul-rst.err &
k=$!
ready /tmp/ul-rst.err listening
out=$(lib connect 10.67.0.2:6030 --file /tmp/ul-8a 2>&1) && fail "a reset went unnoticed: $out"
[[ $out == *"reset by the peer"* ]] || fail "peer reset: $out"
wait "$k"
echo "reset by the kernel peer mid-transfer: the library reports it"
in_b timeout 300 python3 "$peer" sink 10.67.0.2 6031 1 >/tmp/ul-kill.json 2>/tmp/ul-kill.err &
k=$!
ready /tmp/ul-kill.err listening
# exec: $! is then the application itself, not a shell around it.
(exec ip netns exec ua "$nc" --registry "$REG" --dev va connect 10.67.0.2:6031 --file /tmp/ul-data >/dev/null 2>&1) &
c=$!
# Well into the transfer (256 MiB take half a minute here).
pause 5
kill -9 "$c"
for ((i = 0; i < 100; i++)); do [[ -s /tmp/ul-kill.json ]] && break; pause 0.1; done
wait "$k"
[[ $(</tmp/ul-kill.json) == *'"error": "reset"'* ]] || fail "kernel peer of a killed library client: $(cat /tmp/ul-kill.json)"
echo "library client killed mid-transfer: its kernel peer saw a reset within $((i / 10)) s"
(exec ip netns exec ua "$nc" --registry "$REG" --dev va listen 6032 >/tmp/ul-kill2.json 2>/tmp/ul-kill2.err) &
s=$!
ready /tmp/ul-kill2.err "listening on"
in_b timeout 300 python3 "$peer" source 10.67.0.1 6032 1 /tmp/ul-data >/tmp/ul-kill2k.json &
k=$!
pause 5
kill -9 "$s"
for ((i = 0; i < 100; i++)); do [[ -s /tmp/ul-kill2k.json ]] && break; pause 0.1; done
wait "$k"
[[ $(</tmp/ul-kill2k.json) == *'"error": "reset"'* ]] || fail "kernel client of a killed library server: $(cat /tmp/ul-kill2k.json)"
echo "library server killed mid-transfer: its kernel client saw a reset within $((i / 10)) s"

# 6. Clear errors: no registry, port taken, no rights, endpoint gone.
out=$(in_a "$nc" --registry /tmp/ul-none --dev va listen 6040 2>&1) && fail "listened without a registry"
[[ $out == *"no BQI registry"* ]] || fail "no registry: $out"
(exec ip netns exec ua "$nc" --registry "$REG" --dev va listen 6041 >/dev/null 2>/tmp/ul-taken.err) &
s=$!
ready /tmp/ul-taken.err "listening on"
out=$(lib listen 6041 2>&1) && fail "listened twice on 6041"
[[ $out == *"address in use"* ]] || fail "port taken: $out"
kill "$s"; wait "$s" 2>/dev/null
out=$(in_a setpriv --reuid=65534 --regid=65534 --clear-groups "$nc" --registry "$REG" --dev va listen 80 2>&1) \
  && fail "an unprivileged application got port 80"
[[ $out == *"not allowed"* ]] || fail "no rights: $out"
in_b timeout 300 python3 "$peer" sink 10.67.0.2 6042 1 >/dev/null 2>/tmp/ul-gone.err &
k=$!
ready /tmp/ul-gone.err listening
lib connect 10.67.0.2:6042 --file /tmp/ul-data >/tmp/ul-gone.json 2>&1 &
c=$!
# Well into the transfer, as above.
pause 5
ip -n ua link del va
wait "$c" && fail "a transfer went on with its device deleted"
[[ $(</tmp/ul-gone.json) == *"endpoint is gone"* ]] || fail "device deleted: $(</tmp/ul-gone.json)"
# Its peer lost the link with it: nothing more comes.
kill "$k" 2>/dev/null
wait "$k" 2>/dev/null
echo "errors: no registry, port in use, no rights and a deleted device each reported as such"
