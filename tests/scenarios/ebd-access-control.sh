#!/bin/bash
# fixture: ebd (tests/guest/ebd.sh: shares the link, namespace and module)
# Per-export access control (ebd-server --allow EXPORT=MAC[,ro]): an export
# allowed only to another MAC refuses this client at once (the attach fails
# and says why, no directory is left behind); an export allowing this client
# read-only attaches read-only, reads correctly, and the server refuses
# writes even when they bypass the block layer.
source "${BASH_SOURCE[0]%/*}/../guest/lib.sh"
source "${BASH_SOURCE[0]%/*}/../guest/ebd.sh"
trap ebd_teardown EXIT
ebd_setup 16
client=$(cat /sys/class/net/pnk0/address)
server=$(ip -n ebdsrv -br link show pnk1 | awk '{print $3}')
# Export 0 ($EBD_IMG) is for another machine only; export 1 is this
# client's, read-only (the file itself is writable on the server).
head -c $((4 << 20)) /dev/urandom >/tmp/ebd-acl.img
sha_before=$(sha256sum </tmp/ebd-acl.img)
ebd_server_start -e /tmp/ebd-acl.img --allow 0=02:00:00:00:00:99 --allow "1=$client,ro"

# Without --server the disk discovers the server by a broadcast Info
# request, which the server answers (Denied) like a unicast one.
err=$(ebdctl attach --name denied --netdev pnk0 --export 0 2>&1) && fail "attach to an export allowed to another MAC succeeded"
grep -q "the server refused this client: not allowed to use export 0" <<<"$err" || fail "attach error does not say why: $err"
# (A timeout would say "no server answered": the reason proves the answer
# was the refusal, so no clock is needed, which under TCG would be flaky.)
[[ ! -e $EBD_CFG/denied ]] || fail "refused attach left its directory"
# Bound to the server's address: the same refusal.
err=$(ebdctl attach --name denied2 --netdev pnk0 --export 0 --server "$server" 2>&1) && fail "attach by address succeeded"
grep -q "not allowed to use export 0" <<<"$err" || fail "attach by address: $err"

dev=$(ebdctl attach --name ro --netdev pnk0 --export 1) || fail "attach to the export allowed read-only"
[[ $(blockdev --getro "$dev") == 1 ]] || fail "$dev is writable although the server allows this client read-only"
cmp <(dd if="$dev" bs=1M iflag=direct 2>/dev/null) /tmp/ebd-acl.img || fail "$dev reads back wrong"
! dd if=/dev/zero of="$dev" bs=4k count=1 oflag=direct 2>/dev/null || fail "a write to $dev succeeded"

# A write frame sent straight from this client's address (bypassing the
# read-only disk) is refused by the server with ReadOnly (status 3).
python3 - "$client" "$server" <<'PY' || fail "the server did not refuse a raw write from a read-only client"
import random, select, socket, struct, sys, time
client = bytes.fromhex(sys.argv[1].replace(":", ""))
server = bytes.fromhex(sys.argv[2].replace(":", ""))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0667))
s.bind(("pnk0", 0x0667))
session, seq = random.randrange(1, 1 << 32), 1
# version opcode flags tag seq export status offset length frag_offset frag_len session below, mask, reserved
hdr = struct.pack(">BBHIIHHQIIIII", 2, 3, 0, 1, seq, 1, 0, 0, 512, 0, 512, session, seq) + bytes(16) + bytes(4)
s.send(server + client + b"\x06\x66" + hdr + b"\xee" * 512)
end = time.time() + 3
while time.time() < end:
    if not select.select([s], [], [], end - time.time())[0]:
        break
    f = s.recv(65536)
    status = struct.unpack(">H", f[14 + 14:14 + 16])[0]
    sess = struct.unpack(">I", f[14 + 36:14 + 40])[0]
    if f[6:12] == server and sess == session:
        print("raw write answered with status", status)
        sys.exit(0 if status == 3 else 1)
print("no answer to the raw write")
sys.exit(1)
PY
[[ $(sha256sum </tmp/ebd-acl.img) == "$sha_before" ]] || fail "the read-only client changed export 1"
ebdctl detach ro || fail "detach"
ebd_server_stop TERM
grep -E "stopped;.* [1-9][0-9]* denied" /tmp/ebd-server.log || fail "the server did not count the denied requests"
echo "export 0 refused this client with a clear error; export 1 served it read-only and refused its writes"
