#!/bin/bash
# fixture: ebd (tests/guest/ebd.sh: shares the link, namespace and module)
# What a disk does when its surroundings change (issue 8, item 12):
# 1. discovery hears a refusal first (another server without the export):
#    it keeps listening and binds the server that accepts;
# 2. discovery hears only refusals: it fails with the refusal's error, not a
#    timeout;
# 3. the client's MTU drops below the disk's frame size: I/O fails at once
#    with a logged reason (not one timeout after another), and works again
#    once the MTU is back;
# 4. the device refuses every frame (a pfifo of length 0 on the client's
#    interface: NET_XMIT_DROP for each): refused frames are sent again only
#    for a while, then count as lost, so the I/O fails after its retries
#    instead of waiting for ever; with the qdisc gone, I/O works;
# 5. the net device moves to another namespace: the disk detaches with a
#    logged reason and its I/O ends with errors, without a hang.
source "${BASH_SOURCE[0]%/*}/../guest/lib.sh"
source "${BASH_SOURCE[0]%/*}/../guest/ebd.sh"
REFUSER=02:fa:6e:00:00:01
refuser_pid=
cleanup() {
  [[ -n $refuser_pid ]] && kill "$refuser_pid" 2>/dev/null
  ip netns del ebdaway 2>/dev/null
  ebd_teardown
}
trap cleanup EXIT
ebd_setup 64

# refuser: answers every request on the server's link with "no such export"
# (status 6), from its own address, as a server without the export would.
refuser_start() {
  ip netns exec ebdsrv python3 - "$REFUSER" <<'PY' &
import socket, struct, sys
mac = bytes.fromhex(sys.argv[1].replace(":", ""))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0666))
s.bind(("pnk1", 0x0666))
while True:
    f = s.recv(4096)
    req = f[14:78]
    if len(req) < 64 or req[0] != 2:
        continue
    # The request header echoed with a refusal status (bytes 14-15).
    s.send(f[6:12] + mac + b"\x06\x67" + req[:14] + struct.pack(">H", 6) + req[16:])
PY
  refuser_pid=$!
  pause 1
}

# 1. A refusal, then a real server: the server is frozen while the first
# requests are refused, so the refusal is certainly heard first.
ebd_server_start
kill -STOP "$(ebd_server_pid)"
refuser_start
ebdctl attach --name d1 --netdev pnk0 >/tmp/attach.out 2>&1 &
attach_pid=$!
pause 0.5
kill -CONT "$(ebd_server_pid)"
wait "$attach_pid" || { cat /tmp/attach.out; fail "discovery gave up at the first refusal"; }
dd if=/dev/ebd0 of=/dev/null bs=64k count=4 iflag=direct status=none || fail "read after discovery"
echo 0 >"$EBD_CFG/d1/power" && rmdir "$EBD_CFG/d1" || fail "remove d1"
ebd_server_stop

# 2. Only refusals: the refusal's error (ENXIO), not ETIMEDOUT.
err=$(ebdctl attach --name d2 --netdev pnk0 2>&1) && fail "attach succeeded with only a refusing server"
grep -q "No such device or address" <<<"$err" || fail "discovery with only refusals: $err"
[[ ! -e $EBD_CFG/d2 ]] || fail "failed attach left its directory"
kill "$refuser_pid"; wait "$refuser_pid" 2>/dev/null; refuser_pid=

# 3. The MTU drops below the frame size, then comes back.
ebd_server_start
ebdctl attach --name d3 --netdev pnk0 --timeout-ms 2000 --retries 5 >/dev/null || fail "attach d3"
head -c $((1 << 20)) /dev/urandom >/tmp/mtu-pattern
dd if=/tmp/mtu-pattern of=/dev/ebd0 bs=1M oflag=direct status=none || fail "write before the MTU drop"
mark=$(log_mark)
ip link set pnk0 mtu 1500 || fail "mtu 1500"
start=$SECONDS
dd if=/dev/ebd0 of=/dev/null bs=64k count=1 iflag=direct status=none 2>/dev/null && fail "read with a too small MTU succeeded"
# Failing at once means before the first response timeout (2 s) could
# expire even once; retries would take 2+4+8+... s.
elapsed=$((SECONDS - start))
log_since "$mark" | grep -q "pnk0: MTU 1500 is below the" || fail "no log line for the MTU drop"
[[ $(ebd_stat d3 failed_mtu) -gt 0 ]] || fail "failed_mtu not counted"
[[ $(ebd_resends d3) == 0 ]] || fail "requests were resent instead of failed"
ip link set pnk0 mtu 9000 || fail "mtu 9000"
cmp <(dd if=/dev/ebd0 bs=1M count=1 iflag=direct status=none) /tmp/mtu-pattern || fail "data after the MTU came back"
log_since "$mark" | grep -q "pnk0: MTU 9000 carries" || fail "no log line for the MTU coming back"
echo "MTU drop: I/O failed after ${elapsed} s without retransmission, worked again after"
echo 0 >"$EBD_CFG/d3/power" && rmdir "$EBD_CFG/d3" || fail "remove d3"

# 4. A device that refuses every frame. (A peer that goes down is another
#    case: veth then loses its carrier, its queue becomes noop, which
#    drops frames while reporting congestion, so they count as sent.)
ebdctl attach --name d5 --netdev pnk0 --timeout-ms 500 --retries 2 >/dev/null || fail "attach d5"
dd if=/dev/ebd0 of=/dev/null bs=64k count=1 iflag=direct status=none || fail "read before the device refused"
refused_before=$(ebd_stat d5 tx_refused) || fail "no tx_refused counter"
tc qdisc add dev pnk0 root pfifo limit 0 || fail "pfifo limit 0"
started=$SECONDS
dd if=/dev/ebd0 of=/dev/null bs=64k count=1 skip=7 iflag=direct status=none 2>/dev/null &
dd_pid=$!
for ((_i = 0; _i < 30; _i++)); do kill -0 "$dd_pid" 2>/dev/null || break; pause 1; done
kill -0 "$dd_pid" 2>/dev/null && fail "I/O still waiting 30 s into the device's refusals"
wait "$dd_pid" && fail "I/O succeeded through a device that refuses every frame"
took=$((SECONDS - started))
tc qdisc del dev pnk0 root || fail "removing the pfifo"
refused=$(($(ebd_stat d5 tx_refused) - refused_before))
((refused > 0)) || fail "no frame refused by a pfifo of length 0: $(ebdctl stats d5)"
[[ $(ebd_stat d5 timeouts) -gt 0 ]] || fail "the request failed, but not by timing out: $(ebdctl stats d5)"
dd if=/dev/ebd0 of=/dev/null bs=64k count=1 iflag=direct status=none || fail "read once the device takes frames again"
echo 0 >"$EBD_CFG/d5/power" && rmdir "$EBD_CFG/d5" || fail "remove d5"
echo "a device that refuses every frame: $refused frames refused, the read failed after its retries in ${took} s, not a hang; reads work again once it takes frames"

# 5. The net device moves to another namespace under I/O.
ebdctl attach --name d4 --netdev pnk0 --timeout-ms 1000 --retries 30 >/dev/null || fail "attach d4"
kill -STOP "$(ebd_server_pid)"
dd if=/dev/urandom of=/dev/ebd0 bs=1M count=8 oflag=direct 2>/dev/null &
dd_pid=$!
pause 1
mark=$(log_mark)
ip netns add ebdaway || fail "netns ebdaway"
ip link set pnk0 netns ebdaway || fail "move pnk0"
for ((_i = 0; _i < 30; _i++)); do kill -0 "$dd_pid" 2>/dev/null || break; pause 1; done
kill -0 "$dd_pid" 2>/dev/null && fail "I/O still hanging 30 s after the namespace move"
wait "$dd_pid" && fail "I/O succeeded after the device left"
kill -CONT "$(ebd_server_pid)"
[[ $(ebd_stat d4 detached) == 1 ]] || fail "disk not detached after the move"
log_since "$mark" | grep -q "pnk0 left this namespace or is going away" || fail "no log line for the move"
echo 0 >"$EBD_CFG/d4/power" && rmdir "$EBD_CFG/d4" || fail "remove d4"
echo "namespace move: disk detached with a logged reason, I/O ended with an error"
