#!/bin/bash
# The BQI demux device over a veth pair between two namespaces (ba, bb):
# 1. Raw frames under the link header, endpoint to endpoint by buffer queue
#    index: 64 B and 9000 B echoed unchanged, over the veth pair and over a
#    pnic pair (the emulated NIC, which receives through NAPI and GRO); two
#    raw endpoints on one host each get only the frames for their index.
# 2. Two UDP endpoints on one host each receive only their own datagrams,
#    sent by kernel sockets; ping and kernel TCP keep working meanwhile.
# 3. Forged sends (source MAC, ethertype, either index, IP protocol,
#    addresses, ports) are refused and counted; a capture on the peer sees
#    the valid frames and none of the forged ones.
# 4. Malformed requests (buffer past the area, length past a buffer, refill
#    of a pooled buffer, unknown kind, garbage ring index) give error events
#    and leave the endpoint working.
# 5. Without CAP_NET_ADMIN an endpoint cannot be configured; a configured
#    one cannot be reconfigured.
# 6. The registry (bqi-registry) grants endpoints to unprivileged
#    applications over its socket; it refuses a port taken by a kernel
#    socket or another application, and a privileged port to a non-root
#    caller; kill -9 of an application reclaims its endpoint and holds the
#    port for the quiet time, then frees it; no registry is a clear error.
# 7. Deleting the device with an endpoint open ends it; the module cannot be
#    unloaded while an endpoint is open; kill -9 of its holder frees it, and
#    then the module unloads (the harness checks for leaks and splats).
source "${BASH_SOURCE[0]%/*}/../guest/lib.sh"
probe="$POLYNIC_BIN/bqi-probe"
cleanup() {
  [[ -n ${holder:-} ]] && kill -9 "$holder" 2>/dev/null
  [[ -n ${registry:-} ]] && kill "$registry" 2>/dev/null && wait "$registry" 2>/dev/null
  [[ -d /sys/kernel/config/pnic/bq ]] && { echo 0 >/sys/kernel/config/pnic/bq/power; rmdir /sys/kernel/config/pnic/bq; }
  rmmod pnic 2>/dev/null
  ip netns del ba 2>/dev/null
  ip netns del bb 2>/dev/null
  rmmod bqi 2>/dev/null
  return 0
}
trap cleanup EXIT

ko=$(module_path bqi) || exit 1
insmod "$ko" || fail "insmod bqi"
[[ -c /dev/bqi ]] || fail "/dev/bqi missing"
ip netns add ba && ip netns add bb || fail "netns"
ip link add va netns ba mtu 9000 type veth peer vb netns bb mtu 9000 || fail "veth"
ip -n ba addr add 10.66.0.1/24 dev va && ip -n ba link set va up || fail "va"
ip -n bb addr add 10.66.0.2/24 dev vb && ip -n bb link set vb up || fail "vb"
in_a() { ip netns exec ba "$@"; }
in_b() { ip netns exec bb "$@"; }
mac_b=$(in_b cat /sys/class/net/vb/address) || fail "vb address"

# 1. Raw frames by index, both sizes, each echoed unchanged.
# raw_round DEV_A DEV_B MAC_B LABEL: pings from ba over DEV_A to echoes in bb.
raw_round() {
  local a=$1 b=$2 mac=$3 label=$4 size out echo_pid
  for size in 64 9000; do
    in_b "$probe" echo --dev "$b" --bqi 9 --peer 7 --count 100 --timeout 60 >/tmp/bqi-echo.json &
    echo_pid=$!
    pause 1
    out=$(in_a "$probe" ping --dev "$a" --bqi 7 --peer 9 --dst "$mac" --count 100 --size "$size") \
      || fail "$label ping $size: $out"
    wait "$echo_pid" || fail "$label echo $size: $(</tmp/bqi-echo.json)"
    [[ $out == *'"received":100'* && $out == *'"changed":0'* ]] || fail "$label ping $size: $out"
    echo "$label raw $size B: 100 echoed unchanged: $out"
  done
}
raw_round va vb "$mac_b" veth

# Two raw endpoints on one host (indices 9 and 11), each pinged by its own
# peer at once: a frame for one reaching the other would be echoed with a
# source index its template refuses, failing that echo.
in_b "$probe" echo --dev vb --bqi 9 --peer 7 --count 100 --timeout 60 >/tmp/bqi-e9.json &
e9=$!
in_b "$probe" echo --dev vb --bqi 11 --peer 8 --count 100 --timeout 60 >/tmp/bqi-e11.json &
e11=$!
pause 1
in_a "$probe" ping --dev va --bqi 7 --peer 9 --dst "$mac_b" --count 100 >/tmp/bqi-p9.json &
p9=$!
in_a "$probe" ping --dev va --bqi 8 --peer 11 --dst "$mac_b" --count 100 >/tmp/bqi-p11.json &
p11=$!
wait "$p9" && wait "$p11" || fail "two pings: $(</tmp/bqi-p9.json) $(</tmp/bqi-p11.json)"
wait "$e9" && wait "$e11" || fail "two echoes: $(</tmp/bqi-e9.json) $(</tmp/bqi-e11.json)"
for f in /tmp/bqi-e9.json /tmp/bqi-e11.json; do
  [[ $(<"$f") == *'"echoed":100,'* && $(<"$f") == *'"template_rejects":0'* ]] || fail "raw endpoint got others' frames: $(<"$f")"
done
echo "two raw endpoints on one host, each only its own 100 frames"

# The same over a pnic pair.
mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
# (Another scenario of this boot may have left it loaded: use it then.)
[[ -d /sys/module/pnic ]] || insmod "$(module_path pnic)" || fail "insmod pnic"
P=/sys/kernel/config/pnic
mkdir "$P/bq" && echo bqa >"$P/bq/name_a" && echo bqb >"$P/bq/name_b" && echo 1 >"$P/bq/power" || fail "pnic pair"
ip link set bqa netns ba && ip link set bqb netns bb || fail "pnic into namespaces"
ip -n ba link set bqa mtu 9000 up && ip -n bb link set bqb mtu 9000 up || fail "pnic up"
raw_round bqa bqb "$(in_b cat /sys/class/net/bqb/address)" pnic
echo 0 >"$P/bq/power" && rmdir "$P/bq" || fail "pnic pair removal"
rmmod pnic || fail "rmmod pnic"

# 2. Two UDP endpoints on bb, kernel UDP senders on ba; stack traffic meanwhile.
in_b "$probe" udp-recv --dev vb --local 10.66.0.2:5001 --count 50 >/tmp/bqi-u1.json &
u1=$!
in_b "$probe" udp-recv --dev vb --local 10.66.0.2:5002 --count 50 >/tmp/bqi-u2.json &
u2=$!
in_b socat -u TCP-LISTEN:6000,reuseaddr OPEN:/tmp/bqi-tcp.out,creat,trunc &
tcp=$!
pause 2
in_a python3 - <<'PY' || fail "udp senders"
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(50):
    s.sendto(b"A" * 100, ("10.66.0.2", 5001))
    s.sendto(b"B" * 200, ("10.66.0.2", 5002))
    time.sleep(0.002)
PY
head -c 1048576 /dev/urandom >/tmp/bqi-tcp.in
in_a socat -u FILE:/tmp/bqi-tcp.in TCP:10.66.0.2:6000,retry=5 || fail "kernel TCP send"
wait "$tcp" || fail "kernel TCP receive"
cmp -s /tmp/bqi-tcp.in /tmp/bqi-tcp.out || fail "kernel TCP data changed"
in_a ping -c 3 -i 0.2 -W 2 10.66.0.2 >/dev/null || fail "ping through a device with endpoints"
wait "$u1" || fail "udp endpoint 1: $(</tmp/bqi-u1.json)"
wait "$u2" || fail "udp endpoint 2: $(</tmp/bqi-u2.json)"
u1out=$(</tmp/bqi-u1.json) u2out=$(</tmp/bqi-u2.json)
# (JSON keys come sorted.)
[[ $u1out == *'"foreign":0,"payload_bytes":5000,'*'"received":50,'* ]] || fail "endpoint 1 got others' data: $u1out"
[[ $u2out == *'"foreign":0,"payload_bytes":10000,'*'"received":50,'* ]] || fail "endpoint 2 got others' data: $u2out"
# The device's demultiplexer counted them (and timed some).
[[ $u2out == *'"device":{"delivered":'[1-9][0-9]*'"demux.ns":'[1-9]*'"demux.samples":'[1-9]* ]] \
  || fail "device counters: $u2out"
echo "two UDP endpoints, each only its own: $u1out $u2out; kernel TCP 1 MiB and ping fine"

# 3. Forged sends, with a capture on the peer: every probe frame carries
# "forge-probe", the forged ones too (one header byte differs).
rm -f /tmp/bqi-forge-done
in_b python3 - >/tmp/bqi-capture.txt <<'PY' &
import os, socket, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind(("vb", 0))
s.settimeout(0.5)
end = time.time() + 120
seen = 0
while time.time() < end and not os.path.exists("/tmp/bqi-forge-done"):
    try:
        frame, addr = s.recvfrom(65535)
        # Frames that arrived (not the peer's own replies, such as ICMP
        # port unreachable quoting a probe).
        if addr[2] != socket.PACKET_OUTGOING and b"forge-probe" in frame:
            seen += 1
    except socket.timeout:
        pass
print(seen)
PY
capture=$!
pause 2
n=0
for field in src-mac ethertype src-bqi dst-bqi; do
  out=$(in_a "$probe" forge --dev va --bqi 7 --peer 9 --dst "$mac_b" --field "$field") || fail "forge $field: $out"
  n=$((n + 1))
done
for field in protocol src-ip dst-ip src-port dst-port; do
  out=$(in_a "$probe" forge --dev va --local 10.66.0.1:4000 --remote 10.66.0.2:4001 --dst "$mac_b" --field "$field") \
    || fail "forge $field: $out"
  n=$((n + 1))
done
pause 1
echo done >/tmp/bqi-forge-done
wait "$capture"
seen=$(</tmp/bqi-capture.txt)
((seen == n)) || fail "the peer captured $seen probe frames; $n valid ones were sent and $n forged ones refused"
echo "$n forged sends refused by reason and counted; the peer saw exactly the $n valid frames"

# 4. Malformed requests.
out=$(in_a "$probe" bad-requests --dev va --bqi 7 --peer 9) || fail "bad requests: $out"
echo "malformed requests refused: $out"

# 5. Rights: no configuration without CAP_NET_ADMIN, none twice.
out=$(in_a setpriv --inh-caps=-net_admin --bounding-set=-net_admin "$probe" configure --dev va --bqi 7 --peer 9)
[[ $out == *'"first":"configuring an endpoint needs CAP_NET_ADMIN"'* ]] || fail "configured without CAP_NET_ADMIN: $out"
out=$(in_a "$probe" configure --dev va --bqi 7 --peer 9 --twice)
[[ $out == *'"first":"ok"'*'"second":"the endpoint is configured already and cannot be changed"'* ]] \
  || fail "reconfigured a sealed endpoint: $out"
echo "rights: $out"

# 6. The registry, and unprivileged applications.
REG=/tmp/bqi-registry.sock
nobody() { in_b setpriv --reuid=65534 --regid=65534 --clear-groups "$probe" "$@"; }
in_b "$POLYNIC_BIN/bqi-registry" serve --socket "$REG" --quiet-time 3 >/tmp/bqi-reg.out 2>/tmp/bqi-reg.err &
registry=$!
for _ in 1 2 3 4 5 6 7 8 9 10; do [[ -S $REG ]] && break; pause 0.5; done
[[ -S $REG ]] || fail "registry did not start: $(</tmp/bqi-reg.err)"
nobody udp-recv --registry "$REG" --dev vb --local 10.66.0.2:5003 --count 10 >/tmp/bqi-u3.json &
u3=$!
pause 2
out=$(nobody udp-recv --registry "$REG" --dev vb --local 10.66.0.2:5003 --count 1 --timeout 1 2>&1) \
  && fail "a second application got port 5003: $out"
[[ $out == *"the registry refused: udp port 5003 is taken"* ]] || fail "second application on 5003: $out"
in_a python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(10):
    s.sendto(b"C" * 64, ("10.66.0.2", 5003)); time.sleep(0.01)' || fail "sending to 5003"
wait "$u3" || fail "unprivileged UDP application: $(</tmp/bqi-u3.json)"
[[ $(</tmp/bqi-u3.json) == *'"received":10,'* ]] || fail "unprivileged application: $(</tmp/bqi-u3.json)"
in_b python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("10.66.0.2", 5004)); time.sleep(30)' &
kernel_sock=$!
pause 2
out=$(nobody udp-recv --registry "$REG" --dev vb --local 10.66.0.2:5004 --count 1 --timeout 1 2>&1) \
  && fail "got a port a kernel socket holds: $out"
[[ $out == *"taken by a kernel socket"* ]] || fail "port held by the kernel: $out"
kill "$kernel_sock"; wait "$kernel_sock" 2>/dev/null
out=$(nobody udp-recv --registry "$REG" --dev vb --local 10.66.0.2:53 --count 1 --timeout 1 2>&1) \
  && fail "a non-root application got port 53: $out"
[[ $out == *"port 53 needs root"* ]] || fail "privileged port: $out"
out=$(nobody udp-recv --registry /tmp/no-such-registry --dev vb --local 10.66.0.2:5006 --count 1 2>&1) \
  && fail "worked without a registry: $out"
[[ $out == *"no BQI registry at /tmp/no-such-registry"* ]] || fail "no registry: $out"
# (exec: $! must be the application itself, not a subshell around it.)
(exec ip netns exec bb setpriv --reuid=65534 --regid=65534 --clear-groups "$probe" hold --registry "$REG" --dev vb \
  --local 10.66.0.2:5005 --seconds 60 >/dev/null) &
victim=$!
pause 2
status=$(in_b "$POLYNIC_BIN/bqi-registry" status --socket "$REG" --json)
# (Status entries keep their field order.)
[[ $status == *'"state":"endpoint","pid":'[1-9]*'"kind":"udp","dev":"vb",'*'"local":"10.66.0.2:5005"'* ]] \
  || fail "status before kill: $status"
kill -9 "$victim"
wait "$victim" 2>/dev/null
pause 1
status=$(in_b "$POLYNIC_BIN/bqi-registry" status --socket "$REG" --json)
[[ $status == *'"state":"quiet","pid":0,"kind":"udp",'*'"local":"10.66.0.2:5005","remote":null,"quiet_s":'[0-9]* ]] \
  || fail "status after kill -9: $status"
out=$(nobody udp-recv --registry "$REG" --dev vb --local 10.66.0.2:5005 --count 1 --timeout 1 2>&1) \
  && fail "port 5005 reused during its quiet time: $out"
pause 3
out=$(nobody udp-recv --registry "$REG" --dev vb --local 10.66.0.2:5005 --count 1 --timeout 1 2>&1)
[[ $out == *'"received":0,'* ]] || fail "port 5005 not free after its quiet time: $out"
kill "$registry"; wait "$registry" 2>/dev/null
registry=
echo "registry: unprivileged grant, refusals (taken, kernel socket, privileged port, no registry), kill -9 reclaimed with the port held 3 s"

# 7. Device deletion, module unload, kill -9.
in_b "$probe" hold --dev vb --bqi 3 --peer 4 --seconds 60 >/tmp/bqi-hold.json &
held=$!
pause 2
ip -n bb link del vb || fail "deleting vb"
wait "$held" || fail "holder: $(</tmp/bqi-hold.json)"
out=$(</tmp/bqi-hold.json)
[[ $out == *'"ended":true'*"the endpoint's device is gone"* ]] || fail "endpoint not ended by device removal: $out"
echo "device removed under an open endpoint: $out"
ip link add vc type veth peer vd || fail "veth 2"
ip link set vc up
"$probe" hold --dev vc --bqi 5 --peer 6 --seconds 120 >/dev/null &
holder=$!
pause 2
rmmod bqi 2>/dev/null && fail "bqi unloaded with an endpoint open"
kill -9 "$holder"
wait "$holder" 2>/dev/null
holder=
pause 1
rmmod bqi || fail "rmmod bqi after the holder died"
ip link del vc
echo "module held while an endpoint was open, unloaded once its holder was killed"
