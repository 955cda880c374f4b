#!/bin/bash
# A server serves only frames addressed to it. Two ebd-servers on two
# interfaces of one shared segment export different files as export 0; one
# interface is in promiscuous mode, and the segment floods every frame to
# every port (a hub), so that server sees every frame sent to the other.
# The client writes through the first server: the second one's file must be
# unchanged, and the second server must have seen (and dropped) the frames.
#
# The kernel has no bridge, so the hub is a small relay over packet sockets
# in its own namespace: client pnk0 - h0 [hub] h1 - sa (server A)
#                                              h2 - sb (server B, promisc).
source "${BASH_SOURCE[0]%/*}/../guest/lib.sh"
source "${BASH_SOURCE[0]%/*}/../guest/ebd.sh"

hub_pid='' a_pid='' b_pid=''
teardown() {
  local d
  for d in "${EBD_CFG:?}"/*/; do
    [[ -d $d/ ]] || continue
    echo 0 >"$d/power"
    rmdir "$d"
  done
  for p in $a_pid $b_pid $hub_pid; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rmmod ebd 2>/dev/null
  ip netns del ebdsrv 2>/dev/null
  ip netns del ebdhub 2>/dev/null
  ip link del pnk0 2>/dev/null
  return 0
}
trap teardown EXIT

ip netns add ebdsrv && ip netns add ebdhub || fail "netns"
ip link add name pnk0 type veth peer name h0 || fail "veth"
ip link add name h1 type veth peer name sa || fail "veth"
ip link add name h2 type veth peer name sb || fail "veth"
for i in h0 h1 h2; do ip link set dev "$i" netns ebdhub && ip -n ebdhub link set dev "$i" mtu 9000 up; done
for i in sa sb; do ip link set dev "$i" netns ebdsrv && ip -n ebdsrv link set dev "$i" mtu 9000 up; done
ip link set dev pnk0 mtu 9000 up
ip -n ebdsrv link set dev sb promisc on || fail "promisc"
mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
insmod "$(module_path ebd)" || fail "insmod ebd"

# The hub: every EBD frame received on one port goes out of the others.
ip netns exec ebdhub python3 - h0 h1 h2 <<'PY' &
import select, socket, sys
socks = []
for port in sys.argv[1:]:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind((port, 0))
    socks.append(s)
open("/tmp/ebd-hub.ready", "w").close()
while True:
    for s in select.select(socks, [], [])[0]:
        data, addr = s.recvfrom(65536)
        # Skip what the hub itself sent (PACKET_OUTGOING) and non-EBD noise.
        if addr[2] == 4 or data[12:14] not in (b"\x06\x66", b"\x06\x67"):
            continue
        for o in socks:
            if o is not s:
                try:
                    o.send(data)
                except OSError:
                    pass
PY
hub_pid=$!

rm -f /tmp/ebd-a.img /tmp/ebd-b.img /tmp/ebd-hub.ready
truncate -s 4M /tmp/ebd-a.img
head -c $((4 << 20)) /dev/urandom >/tmp/ebd-b.img
b_sum=$(sha256sum </tmp/ebd-b.img)
ip netns exec ebdsrv "$(ebd_bin ebd-server)" -i sa -e /tmp/ebd-a.img 2>/tmp/ebd-a.log &
a_pid=$!
ip netns exec ebdsrv "$(ebd_bin ebd-server)" -i sb -e /tmp/ebd-b.img 2>/tmp/ebd-b.log &
b_pid=$!
for ((i = 1; i <= 50; i++)); do
  [[ -e /tmp/ebd-hub.ready ]] && grep -q serving /tmp/ebd-a.log && grep -q serving /tmp/ebd-b.log && break
  pause 0.1
done
grep -q serving /tmp/ebd-b.log && [[ -e /tmp/ebd-hub.ready ]] || fail "servers or hub did not start"

a_mac=$(ip -n ebdsrv -br link show sa | awk '{print $3}')
ebdctl attach --name p --netdev pnk0 --server "$a_mac" >/dev/null || fail "attach to server A"
head -c $((1 << 20)) /dev/urandom >/tmp/blk
dd if=/tmp/blk of=/dev/ebd0 bs=64k oflag=direct 2>/dev/null || fail "write through server A"
cmp <(dd if=/dev/ebd0 bs=64k count=16 iflag=direct 2>/dev/null) /tmp/blk || fail "read back through server A differs"
cmp -n $((1 << 20)) /tmp/blk /tmp/ebd-a.img || fail "server A's file does not hold the data"
ebdctl detach p || fail "detach"

[[ $(sha256sum </tmp/ebd-b.img) == "$b_sum" ]] || fail "server B (promiscuous) executed frames addressed to server A"
kill -TERM "$b_pid"
wait "$b_pid"
b_pid=''
cat /tmp/ebd-b.log
misaddressed=$(sed -n 's/.* \([0-9][0-9]*\) misaddressed.*/\1/p' /tmp/ebd-b.log)
[[ ${misaddressed:-0} -gt 0 ]] || fail "server B never saw server A's frames: the hub did not flood them"
echo "server B saw $misaddressed frames addressed to server A and executed none; its file is unchanged"
