#!/bin/bash
# fixture: ebd (tests/guest/ebd.sh: shares the link, namespace and module)
# Malformed and foreign response frames are counted by reason and dropped;
# the disk keeps working.
source "${BASH_SOURCE[0]%/*}/../guest/lib.sh"
source "${BASH_SOURCE[0]%/*}/../guest/ebd.sh"
trap ebd_teardown EXIT
ebd_setup 16
ebd_server_start
ebdctl attach --name h --netdev pnk0 >/dev/null || fail "attach"
client=$(cat /sys/class/net/pnk0/address)
server=$(ip -n ebdsrv -br link show pnk1 | awk '{print $3}')

session=$(ebd_stat h session)
[[ -n $session ]] || fail "no session id in the stats"
ip netns exec ebdsrv python3 - "$client" "$server" "$session" <<'PY' || fail "injecting frames"
import socket, struct, sys
client = bytes.fromhex(sys.argv[1].replace(":", ""))
server = bytes.fromhex(sys.argv[2].replace(":", ""))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("pnk1", 0))
session = int(sys.argv[3])
def hdr(version=2, opcode=2, flags=0, tag=0, seq=0, export=0, status=0, offset=0, length=512, fo=0, fl=512,
        sess=None, reserved=0):
    # Wire v2: the v1 fields, then session, the finished window (zero in
    # responses) and 4 reserved bytes.
    return (struct.pack(">BBHIIHHQIII", version, opcode, flags, tag, seq, export, status, offset, length, fo, fl)
            + struct.pack(">I", session if sess is None else sess) + bytes(20) + struct.pack(">I", reserved))
def send(payload, src=server):
    s.send(client + src + b"\x06\x67" + payload)
send(b"\x01\x02\x00")                                  # short
send(hdr(version=1) + bytes(512))                      # wrong version
send(hdr(reserved=1) + bytes(512))                     # reserved bytes set
send(hdr(opcode=99) + bytes(512))                      # unknown opcode
send(hdr(length=8192, fl=4096) + bytes(512))           # length beyond the frame
send(hdr(fo=512, fl=512) + bytes(512))                 # fragment beyond the request
send(hdr(offset=7) + bytes(512))                       # unaligned offset
send(hdr() + bytes(512), src=b"\x02\x11\x22\x33\x44\x55")  # foreign sender
send(hdr(tag=5, seq=12345) + bytes(512))               # no such request
send(hdr(sess=session ^ 1) + bytes(512))               # another session
PY
pause 1
ebdctl stats h
for c in drop_short drop_version drop_field drop_length drop_range drop_foreign drop_stale; do
  [[ $(ebd_stat h "$c") -ge 1 ]] || fail "$c not counted"
done
[[ $(ebd_stat h drop_range) -ge 2 ]] || fail "both range errors not counted"
[[ $(ebd_stat h drop_field) -ge 2 ]] || fail "unknown opcode and reserved bytes not both counted"
[[ $(ebd_stat h drop_foreign) -ge 2 ]] || fail "foreign sender and other session not both counted"
dd if=/dev/urandom of=/tmp/blk bs=64k count=16 2>/dev/null
dd if=/tmp/blk of=/dev/ebd0 bs=64k oflag=direct 2>/dev/null || fail "write after hostile frames"
cmp <(dd if=/dev/ebd0 bs=64k count=16 iflag=direct 2>/dev/null) /tmp/blk || fail "read back differs"
echo "10 hostile frames counted by reason; disk still reads and writes correctly"
