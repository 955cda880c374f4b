#!/bin/bash
# User-level UDP and TCP (bqi-net, smoltcp over a BQI endpoint) against the
# kernel's own sockets, over a veth pair between namespaces ua (the library
# side, with the registry) and ub (the kernel side):
# 1. UDP request/response both ways: library pings a kernel echo, a kernel
#    client pings a library echo.
# 2. TCP, 256 MiB each way with matching SHA-256: library client to a kernel
#    server and back, kernel client to a library server and back.
source "${BASH_SOURCE[0]%/*}/../guest/lib.sh"
nc="$POLYNIC_BIN/bqi-nc"
REG=/tmp/ul-registry.sock
cleanup() {
  [[ -n ${registry:-} ]] && kill "$registry" 2>/dev/null && wait "$registry" 2>/dev/null
  pkill -f "socat.*10.67" 2>/dev/null
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
in_a "$POLYNIC_BIN/bqi-registry" serve --socket "$REG" --quiet-time 2 >/tmp/ul-reg.out 2>/tmp/ul-reg.err &
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
