#!/bin/bash
# Two hosts that both speak BQI (namespaces pa and pb over a veth pair, a
# registry in each): the registries exchange buffer queue indices at
# connection set-up (seed 003 §3.4), and the user-level stacks' packets then
# travel under the polynic link header, demultiplexed by index.
# 1. A library client and a library server: 64 MiB each way at once over one
#    connection, SHA-256 matching; the client's registry learned the
#    server's index; a capture on the server's side sees the data under the
#    link header, both ways.
#    And a server that sends and closes first, to a client that sends all
#    and waits for it to be acknowledged before it reads: the server's data
#    ends in end of file at the client, even though the connection closed
#    in full (both FINs acknowledged) before the client read it.
# 2. Where the peer has a registry but no BQI endpoint for the flow (a
#    kernel server), or no registry at all, connections use plain IPv4.
# 3. An index is confirmed by its flow: a framed datagram naming the library
#    listener's index but carrying another flow is not given to the
#    listener; it loses its link header and reaches the kernel socket of
#    its flow.
# 4. Killed mid-transfer, either side: the peer sees a reset (the surviving
#    stack still frames to the dead endpoint's index; that host's kernel
#    untags the packets and its stack answers with a reset).
# 5. A registry bounds how many endpoints one user holds: past the bound a
#    request is refused as such; another user is not affected.
# timeout: 600
source "${BASH_SOURCE[0]%/*}/../guest/lib.sh"
nc="$POLYNIC_BIN/bqi-nc"
REG_A=/tmp/pe-a.sock
REG_B=/tmp/pe-b.sock
cleanup() {
  local p
  for p in ${reg_a:-} ${reg_b:-}; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  pkill -f "socat.*10.68" 2>/dev/null
  ip netns del pa 2>/dev/null
  ip netns del pb 2>/dev/null
  rmmod bqi 2>/dev/null
  rm -f /tmp/pe-*
  return 0
}
trap cleanup EXIT

insmod "$(module_path bqi)" || fail "insmod bqi"
ip netns add pa && ip netns add pb || fail "netns"
ip link add xa netns pa mtu 9000 type veth peer xb netns pb mtu 9000 || fail "veth"
ip -n pa addr add 10.68.0.1/24 dev xa && ip -n pa link set xa up && ip -n pa link set lo up || fail "xa"
ip -n pb addr add 10.68.0.2/24 dev xb && ip -n pb link set xb up && ip -n pb link set lo up || fail "xb"
in_a() { ip netns exec pa "$@"; }
in_b() { ip netns exec pb "$@"; }
# start_registry NS SOCKET LOG: starts a registry; its pid in reg_pid. Waits
# for its "ready" (the socket file alone may be a stopped registry's).
start_registry() {
  (exec ip netns exec "$1" "$POLYNIC_BIN/bqi-registry" serve --socket "$2" --quiet-time 2 >"$3.out" 2>"$3") &
  local pid=$! i
  for ((i = 0; i < 50; i++)); do grep -q ready "$3.out" 2>/dev/null && break; pause 0.1; done
  grep -q ready "$3.out" 2>/dev/null || fail "registry in $1 did not start: $(<"$3")"
  reg_pid=$pid
}
start_registry pa "$REG_A" /tmp/pe-reg-a.err
reg_a=$reg_pid
start_registry pb "$REG_B" /tmp/pe-reg-b.err
reg_b=$reg_pid
lib_a() { in_a "$nc" --registry "$REG_A" --dev xa "$@"; }
lib_b() { in_b "$nc" --registry "$REG_B" --dev xb "$@"; }
ready() {
  local i
  for ((i = 0; i < 300; i++)); do grep -q "$2" "$1" 2>/dev/null && return 0; pause 0.1; done
  fail "not ready: $(cat "$1")"
}
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

# capture_start FILE: counts, on xb in pb, frames of the polynic ethertype
# longer than 1000 bytes (data, not bare acknowledgements), arriving and
# leaving, until FILE.stop exists; then writes "IN OUT" to FILE. The kernel
# counts (a socket filter per direction and PACKET_STATISTICS, which include
# frames the unread socket dropped), so a slow reader loses nothing.
capture_start() {
  in_b python3 - "$1" <<'PY' &
import ctypes, os, socket, struct, sys, time
out = sys.argv[1]
def counter(outgoing):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.bind(("xb", 0))
    accept_out, accept_in = (0, 1) if outgoing else (1, 0)
    prog = [(0x28, 0, 0, 12), (0x15, 0, 5, 0x88b5), (0x80, 0, 0, 0), (0x25, 0, 3, 1000),
            (0x20, 0, 0, 0xfffff004), (0x15, accept_out, accept_in, 4), (0x06, 0, 0, 64), (0x06, 0, 0, 0)]
    insns = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in prog))
    fprog = struct.pack("HL", len(prog), ctypes.addressof(insns))
    s.setsockopt(socket.SOL_SOCKET, 26, fprog)  # SO_ATTACH_FILTER
    return s, insns
def count(s):
    return struct.unpack("II", s.getsockopt(263, 6, 8))[0]  # SOL_PACKET, PACKET_STATISTICS
sockets = [counter(False), counter(True)]
open(out + ".ready", "w").close()
end = time.time() + 300
while time.time() < end and not os.path.exists(out + ".stop"):
    time.sleep(0.2)
with open(out, "w") as f:
    f.write(f"{count(sockets[0][0])} {count(sockets[1][0])}\n")
PY
  capture=$!
  local i
  for ((i = 0; i < 100; i++)); do [[ -e $1.ready ]] && break; pause 0.1; done
  [[ -e $1.ready ]] || fail "capture did not start"
}
capture_stop() {
  touch "$1.stop"
  wait "$capture"
}

# 1. Library to library, under the link header both ways.
head -c 64M /dev/urandom >/tmp/pe-up
head -c 64M /dev/urandom >/tmp/pe-down
want_up=$(sha256sum </tmp/pe-up | cut -d' ' -f1)
want_down=$(sha256sum </tmp/pe-down | cut -d' ' -f1)
lib_b listen 6100 --file /tmp/pe-down >/tmp/pe-s1.json 2>/tmp/pe-s1.err &
s=$!
ready /tmp/pe-s1.err "listening on"
capture_start /tmp/pe-cap1
out=$(lib_a connect 10.68.0.2:6100 --file /tmp/pe-up) || fail "library client to library server: $out"
wait "$s" || fail "library server: $(cat /tmp/pe-s1.json /tmp/pe-s1.err)"
capture_stop /tmp/pe-cap1
server=$(</tmp/pe-s1.json)
[[ $(field "$out" sha256) == "$want_down" ]] || fail "64 MiB server to client arrived changed: $out"
[[ $(field "$server" sha256) == "$want_up" ]] || fail "64 MiB client to server arrived changed: $server"
grep -q "granted tcp endpoint .* -> Some(10.68.0.2:6100), peer index [1-9]" /tmp/pe-reg-a.err \
  || fail "the client's registry learned no index: $(cat /tmp/pe-reg-a.err)"
read -r cap_in cap_out </tmp/pe-cap1
# 64 MiB in frames of at most 8960 bytes of payload: at least 7490 each way.
((cap_in >= 7490 && cap_out >= 7490)) \
  || fail "the capture saw $cap_in framed data frames arrive and $cap_out leave; 64 MiB each way needs 7490"
(($(field "$out" framed_sent) >= 7490 && $(field "$server" framed_sent) >= 7490)) \
  || fail "the stacks framed too little: client $out, server $server"
echo "library to library: 64 MiB each way, sha256 matches; indices exchanged; the capture saw $cap_in framed data frames in and $cap_out out"
# The server's 128 KiB and FIN fit the client's receive buffer and wait
# there while the client sends; the acknowledgement of the client's FIN
# closes the connection before its first read.
head -c 128K /dev/urandom >/tmp/pe-answer
head -c 4M /dev/urandom >/tmp/pe-request
want_answer=$(sha256sum </tmp/pe-answer | cut -d' ' -f1)
want_request=$(sha256sum </tmp/pe-request | cut -d' ' -f1)
lib_b listen 6106 --file /tmp/pe-answer >/tmp/pe-s7.json 2>/tmp/pe-s7.err &
s=$!
ready /tmp/pe-s7.err "listening on"
out=$(lib_a connect 10.68.0.2:6106 --file /tmp/pe-request --send-first) \
  || fail "a client reading after its peer closed: $out"
wait "$s" || fail "the server that closed first: $(cat /tmp/pe-s7.json /tmp/pe-s7.err)"
[[ $(field "$out" sha256) == "$want_answer" ]] || fail "the answer arrived changed: $out"
[[ $(field "$(</tmp/pe-s7.json)" sha256) == "$want_request" ]] || fail "the request arrived changed: $(</tmp/pe-s7.json)"
echo "a server that closed first: its answer read in full after the connection closed, then end of file"

# 2. Peers that do not speak BQI for the flow: plain IPv4.
head -c 4M /dev/urandom >/tmp/pe-4m
want4=$(sha256sum </tmp/pe-4m | cut -d' ' -f1)
in_b socat -u TCP4-LISTEN:6101,reuseaddr SYSTEM:"sha256sum >/tmp/pe-k2.sum" &
k=$!
pause 0.5
out=$(lib_a connect 10.68.0.2:6101 --file /tmp/pe-4m) || fail "library client to a kernel server: $out"
wait "$k" || fail "kernel server"
[[ $(cut -d' ' -f1 </tmp/pe-k2.sum) == "$want4" ]] || fail "4 MiB to a kernel server arrived changed"
[[ $(field "$out" framed_sent) == 0 ]] || fail "framed to a kernel server: $out"
grep -q "6101), peer index" /tmp/pe-reg-a.err && fail "an index for a kernel server's flow: $(cat /tmp/pe-reg-a.err)"
kill "$reg_b" && wait "$reg_b" 2>/dev/null
reg_b=
in_b socat -u TCP4-LISTEN:6102,reuseaddr SYSTEM:"sha256sum >/tmp/pe-k3.sum" &
k=$!
pause 0.5
out=$(lib_a connect 10.68.0.2:6102 --file /tmp/pe-4m) || fail "library client, no registry at the peer: $out"
wait "$k" || fail "kernel server (no registry)"
[[ $(cut -d' ' -f1 </tmp/pe-k3.sum) == "$want4" && $(field "$out" framed_sent) == 0 ]] \
  || fail "no registry at the peer: $out"
start_registry pb "$REG_B" /tmp/pe-reg-b.err
reg_b=$reg_pid
echo "a kernel server (registry, no endpoint) and a host with no registry: plain IPv4, sha256 matches"

# 3. An index carrying another flow is not the indexed endpoint's.
lib_b listen 6103 --connections 1 >/tmp/pe-s3.json 2>/tmp/pe-s3.err &
s=$!
ready /tmp/pe-s3.err "listening on"
index=$(in_b "$POLYNIC_BIN/bqi-registry" status --socket "$REG_B" --json | python3 -c '
import json, sys
print(next(e["bqi"] for e in json.load(sys.stdin)["entries"] if e["kind"] == "tcp" and e["remote"] is None and e["pid"]))')
[[ $index =~ ^[0-9]+$ ]] || fail "listener index: $index"
in_b python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("10.68.0.2", 7777)); s.settimeout(30)
data, _ = s.recvfrom(100); print(data.decode())' >/tmp/pe-k4.txt &
k=$!
pause 1
frame=$(python3 - "$index" "$(in_a cat /sys/class/net/xa/address)" "$(in_b cat /sys/class/net/xb/address)" <<'PY'
import struct, sys
index, src, dst = int(sys.argv[1]), sys.argv[2], sys.argv[3]
mac = lambda m: bytes(int(x, 16) for x in m.split(":"))
payload = b"index-not-confirmed"
udp = struct.pack("!HHHH", 40000, 7777, 8 + len(payload), 0) + payload
ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, bytes([10, 68, 0, 1]), bytes([10, 68, 0, 2])))
s = sum(struct.unpack("!10H", ip))
s = (s & 0xffff) + (s >> 16)
ip[10:12] = struct.pack("!H", ~s & 0xffff)
link = struct.pack("!BBHHH", 1, 0, index, 0, 0x0800)
print((mac(dst) + mac(src) + b"\x88\xb5" + link + bytes(ip) + udp).hex())
PY
)
"$POLYNIC_BIN/inject" --netns pa --dev xa "$frame" >/dev/null || fail "inject"
wait "$k" || fail "the kernel socket of the flow got nothing: the framed datagram was lost or went to the indexed endpoint"
[[ $(</tmp/pe-k4.txt) == index-not-confirmed ]] || fail "kernel socket got: $(</tmp/pe-k4.txt)"
kill "$s" 2>/dev/null; wait "$s" 2>/dev/null
echo "a framed datagram naming listener index $index with another flow: untagged, delivered to the kernel socket of its flow"

# 4. Killed mid-transfer, each side in turn; the peer sees a reset.
head -c 256M /dev/urandom >/tmp/pe-big
# (exec: $! must be the application itself, not a shell around it.)
(exec ip netns exec pb "$nc" --registry "$REG_B" --dev xb listen 6104 >/tmp/pe-s5.json 2>/tmp/pe-s5.err) &
s=$!
ready /tmp/pe-s5.err "listening on"
(exec ip netns exec pa "$nc" --registry "$REG_A" --dev xa connect 10.68.0.2:6104 --file /tmp/pe-big >/tmp/pe-c5.json 2>&1) &
c=$!
# granted PORT: waits until the client's registry granted the endpoint for
# PORT (the connection starts at once), then 2 s more: mid-transfer.
granted() {
  local i
  for ((i = 0; i < 300; i++)); do grep -q "10.68.0.2:$1), peer index" /tmp/pe-reg-a.err && break; pause 0.1; done
  grep -q "10.68.0.2:$1), peer index" /tmp/pe-reg-a.err || fail "no endpoint granted for port $1: $(</tmp/pe-reg-a.err)"
  pause 2
}
granted 6104
kill -9 "$s"
for ((i = 0; i < 300; i++)); do [[ -s /tmp/pe-c5.json ]] && break; pause 0.1; done
[[ -s /tmp/pe-c5.json ]] || { kill "$c"; fail "the client of a killed library server saw nothing in 30 s"; }
wait "$c" && fail "the client of a killed library server finished: $(</tmp/pe-c5.json)"
[[ $(</tmp/pe-c5.json) == *"reset by the peer"* ]] || fail "client of a killed library server: $(</tmp/pe-c5.json)"
echo "library server killed mid-transfer: its library client saw a reset within $((i / 10)) s"
(exec ip netns exec pb "$nc" --registry "$REG_B" --dev xb listen 6105 >/tmp/pe-s6.json 2>&1) &
s=$!
ready /tmp/pe-s6.json "listening on"
(exec ip netns exec pa "$nc" --registry "$REG_A" --dev xa connect 10.68.0.2:6105 --file /tmp/pe-big >/dev/null 2>&1) &
c=$!
granted 6105
kill -9 "$c"
for ((i = 0; i < 300; i++)); do grep -q '"error"' /tmp/pe-s6.json && break; pause 0.1; done
grep -q '"error"' /tmp/pe-s6.json || { kill "$s"; fail "the server of a killed library client saw nothing in 30 s: $(</tmp/pe-s6.json)"; }
wait "$s" && fail "the server of a killed library client finished: $(</tmp/pe-s6.json)"
grep -q "reset by the peer" /tmp/pe-s6.json || fail "server of a killed library client: $(</tmp/pe-s6.json)"
echo "library client killed mid-transfer: its library server saw a reset within $((i / 10)) s"

# 5. Endpoints per user.
(exec ip netns exec pb "$POLYNIC_BIN/bqi-registry" serve --socket /tmp/pe-lim.sock --max-per-user 1 --exchange-port 0 \
  >/tmp/pe-lim.out 2>/tmp/pe-lim.err) &
lim=$!
for ((i = 0; i < 50; i++)); do grep -q ready /tmp/pe-lim.out 2>/dev/null && break; pause 0.1; done
nobody() { in_b timeout 20 setpriv --reuid=65534 --regid=65534 --clear-groups "$nc" --registry /tmp/pe-lim.sock --dev xb "$@"; }
(exec ip netns exec pb setpriv --reuid=65534 --regid=65534 --clear-groups "$nc" --registry /tmp/pe-lim.sock --dev xb \
  listen 6110 >/tmp/pe-l1.json 2>&1) &
held=$!
ready /tmp/pe-l1.json "listening on"
out=$(nobody listen 6111 2>&1) && fail "a second endpoint past the user's bound: $out"
[[ $out == *"endpoint limit reached"* ]] || fail "past the bound: $out"
(exec ip netns exec pb "$nc" --registry /tmp/pe-lim.sock --dev xb listen 6112 >/tmp/pe-l3.json 2>&1) &
root_l=$!
ready /tmp/pe-l3.json "listening on"
kill "$held" "$root_l" "$lim" 2>/dev/null
wait "$held" "$root_l" "$lim" 2>/dev/null
echo "one endpoint per user: the second refused as over the limit, another user's granted"
