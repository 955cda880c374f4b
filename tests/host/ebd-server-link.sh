#!/bin/bash
# Host check (root, not part of make test): ebd-server rides out link
# events, in a private network namespace with a veth pair and a small
# Python client of protocol v2 instead of the kernel one. The link goes
# down and up, its MTU drops (a read answered right after the drop meets
# EMSGSIZE; later ones ask for frames the link no longer carries and are
# left unanswered) and comes back, and the interface is deleted and
# re-created; after each, Info and a two-frame read must be answered as
# expected, and the same server process must still run and stop cleanly.
#
#   sudo tests/host/ebd-server-link.sh [path/to/ebd-server]
set -u
if [[ ${1:-} != --inside ]]; then
  bin=${1:-$(dirname "$0")/../../userspace/target/debug/ebd-server}
  [[ -x $bin ]] || { echo "build ebd-server first (cd userspace && cargo build)" >&2; exit 1; }
  exec unshare -n "$0" --inside "$(realpath "$bin")"
fi
bin=$2
work=$(mktemp -d)
trap 'kill $srv 2>/dev/null; rm -rf "$work"' EXIT
failures=0

cat >"$work/client.py" <<'PY'
import os, select, socket, struct, subprocess, sys
def mac(s): return bytes.fromhex(s.replace(":", ""))
def link_mac(dev): return mac(subprocess.run(["ip", "-br", "link", "show", "dev", dev], capture_output=True, text=True).stdout.split()[2])
def hdr(opcode, length=0, fl=0, seq=1):
    # version opcode flags tag seq export status offset length frag_offset frag_len session below; mask; reserved
    return struct.pack(">BBHIIHHQIIIII", 2, opcode, 0, 1, seq, 0, 0, 0, length, 0, fl, 0x1234, seq) + bytes(16) + bytes(4)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0667))
s.bind(("ca", 0x0667))
me, srv = link_mac("ca"), link_mac("sb")
def ask(payload, wait):
    s.send(srv + me + b"\x06\x66" + payload)
    got = []
    while select.select([s], [], [], wait)[0]:
        got.append(s.recv(65536))
    return len(got)
label, unit, want = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
info = ask(hdr(1), 0.5)
if len(sys.argv) > 4:  # lower the MTU, then read at once
    subprocess.run(["ip", "link", "set", "dev", "sb", "mtu", sys.argv[4]], check=True)
frames = ask(hdr(2, length=2 * unit, fl=unit), 1.0)
print(f"{label}: Info answered {info} time(s), read answered with {frames} frame(s) (want 1 and {want})")
sys.exit(0 if info == 1 and frames == want else 1)
PY
check() { python3 "$work/client.py" "$@" || failures=$((failures + 1)); }
make_link() {
  ip link add name ca type veth peer name sb && ip link set dev ca mtu 9000 up && ip link set dev sb mtu 9000 up
}

make_link || exit 1
truncate -s 4M "$work/img"
"$bin" -i sb -e "$work/img" 2>"$work/log" &
srv=$!
sleep 0.5
check start 8704 2
ip link set dev sb down; sleep 0.5; ip link set dev sb up; sleep 0.3
check "after down and up" 8704 2
check "read right after the MTU drops to 1500" 8704 0 1500
sleep 1.5
check "MTU 1500, 8704-byte frames" 8704 0
check "MTU 1500, 1024-byte frames" 1024 2
ip link set dev sb mtu 9000; sleep 1.5
check "MTU restored" 8704 2
ip link del dev ca; sleep 0.5; make_link; sleep 1.5
check "interface re-created" 8704 2
kill -0 "$srv" || { echo "FAIL: ebd-server exited"; failures=$((failures + 1)); }
kill -TERM "$srv"; wait "$srv"; rc=$?
cat "$work/log"
((rc == 0)) && grep -q "stopped;" "$work/log" || { echo "FAIL: no clean stop (exit $rc)"; failures=$((failures + 1)); }
for want in "waiting for the link" "larger than the MTU dropped" "MTU 1500" "MTU 9000" "re-created"; do
  grep -q "$want" "$work/log" || { echo "FAIL: not logged: $want"; failures=$((failures + 1)); }
done
((failures == 0)) && echo "PASS" || echo "FAIL: $failures check(s)"
exit $((failures > 0))
