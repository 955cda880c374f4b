#!/bin/bash
# Guest side of `make demo`: the Ethernet Block Device end to end.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/ebd.sh"
trap ebd_teardown EXIT
echo "== guest kernel: $(uname -r), $(nproc) vCPU, $(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo) MiB"
echo "== veth pair pnk0 <-> pnk1 (namespace ebdsrv), MTU 9000; 512 MiB sparse export"
ebd_setup 512
ebd_server_start
echo "== ebd-server on pnk1: $(cat /tmp/ebd-server.log)"
echo "== ebdctl attach --netdev pnk0 (server discovered by broadcast)"
ebdctl attach --name demo --netdev pnk0 || fail "attach"
ebdctl list
dmesg | grep -E "ebd: " | tail -n 1 | sed 's/^/   dmesg: /'
echo "== mkfs.ext4 /dev/ebd0 and mount"
mkfs.ext4 -q -F /dev/ebd0 || fail "mkfs"
mount /dev/ebd0 "$EBD_MNT" || fail "mount"
head -c $((64 << 20)) /dev/urandom >/tmp/demo-src
echo "== copy 64 MiB of random data and 200 small files"
start=$(date +%s.%N)
cp /tmp/demo-src "$EBD_MNT/big" && mkdir "$EBD_MNT/small" && for i in $(seq 200); do
  echo "file $i" >"$EBD_MNT/small/$i"
done
sync
end=$(date +%s.%N)
awk -v s="$start" -v e="$end" 'BEGIN { printf "   written and synced in %.1f s: %.1f MiB/s\n", e - s, 64 / (e - s) }'
umount "$EBD_MNT"
echo 3 >/proc/sys/vm/drop_caches
mount /dev/ebd0 "$EBD_MNT" || fail "remount"
start=$(date +%s.%N)
cmp /tmp/demo-src "$EBD_MNT/big" || fail "big file differs"
end=$(date +%s.%N)
awk -v s="$start" -v e="$end" 'BEGIN { printf "   read back and compared in %.1f s: %.1f MiB/s\n", e - s, 64 / (e - s) }'
for i in $(seq 200); do [[ $(cat "$EBD_MNT/small/$i") == "file $i" ]] || fail "small file $i differs"; done
echo "== verified: the 64 MiB file and 200 small files read back identical after remount"
umount "$EBD_MNT"
echo "== counters (ebdctl stats demo)"
ebdctl stats demo
ebdctl detach demo || fail "detach"
echo "== done"
