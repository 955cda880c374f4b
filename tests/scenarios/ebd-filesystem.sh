#!/bin/bash
# fixture: ebd (tests/guest/ebd.sh: shares the link, namespace and module)
# End to end: ext4 on /dev/ebd0 over a veth pair to ebd-server; files
# written, synced, unmounted, the disk detached and re-attached, and every
# file read back and checked.
source "${BASH_SOURCE[0]%/*}/../guest/lib.sh"
source "${BASH_SOURCE[0]%/*}/../guest/ebd.sh"
trap ebd_teardown EXIT
ebd_setup 256
# Export 1: a second, read-only export with known content.
head -c $((8 << 20)) /dev/urandom >/tmp/ebd-ro.img
ebd_server_start -e /tmp/ebd-ro.img,ro

# An export the server does not have is refused at once, with a clear error.
err=$(ebdctl attach --name nosuch --netdev pnk0 --export 5 2>&1) && fail "attach to a missing export succeeded"
grep -q "No such device or address" <<<"$err" || fail "unexpected error for a missing export: $err"
# (ENXIO is the server's answer; a timeout would be ETIMEDOUT. No clock: a
# loaded TCG guest took 6 s for this.)
[[ ! -e $EBD_CFG/nosuch ]] || fail "failed attach left its directory"
dev=$(ebdctl attach --name disk0 --netdev pnk0) || fail "attach"
[[ $dev == /dev/ebd0 ]] || fail "attach printed $dev, expected /dev/ebd0"
[[ -b /dev/ebd0 ]] || fail "/dev/ebd0 is not a block device"
[[ $(blockdev --getsize64 /dev/ebd0) == $((256 << 20)) ]] || fail "size $(blockdev --getsize64 /dev/ebd0)"
ebdctl list --json | grep -q '"disk": "ebd0"' || fail "list --json does not show ebd0"
# The personality paces its own FIFO; the disk starts without a scheduler.
grep -q '\[none\]' /sys/block/ebd0/queue/scheduler || fail "scheduler: $(cat /sys/block/ebd0/queue/scheduler)"

# One queue per CPU: what a CPU submits goes through its own queue.
cpus=$(nproc)
[[ $(ebd_stat disk0 queues) == "$cpus" ]] || fail "$(ebd_stat disk0 queues) queues on $cpus CPUs"
for ((q = 0; q < cpus; q++)); do
  taskset -c "$q" dd if=/dev/ebd0 of=/dev/null bs=4k count=16 skip=$((q * 16)) iflag=direct status=none \
    || fail "direct reads on CPU $q"
done

mkfs.ext4 -q -F /dev/ebd0 || fail "mkfs.ext4"
mount /dev/ebd0 "$EBD_MNT" || fail "mount"
# Five files of 1 to 5 MiB and a few pages, all different: random bytes
# are drawn once (the guest's random generator makes about 1 MB/s under
# KASAN and TCG) and each file repeats them behind a header of its own.
head -c $((1024 * 1024 + 5 * 4097)) /dev/urandom >/tmp/ebd-random || fail "random data"
pool=()
for i in 1 2 3 4 5; do
  pool+=(/tmp/ebd-random)
  { echo "file $i" && cat "${pool[@]}"; } >"$EBD_MNT/file$i" && truncate -s $((i * 1024 * 1024 + i * 4097)) "$EBD_MNT/file$i" \
    || fail "write file$i"
done
rm -f /tmp/ebd-random
mkdir -p "$EBD_MNT/dir" && for ((i = 1; i <= 50; i++)); do echo "small $i" >"$EBD_MNT/dir/s$i"; done
(cd "$EBD_MNT" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >/tmp/ebd-sums || fail "checksum"
sync || fail "sync"
umount "$EBD_MNT" || fail "umount"
ebdctl stats disk0 || fail "stats"
[[ $(ebd_stat disk0 completed) -gt 100 ]] || fail "too few completed requests"
[[ $(ebd_stat disk0 failed) == 0 ]] || fail "requests failed"
ebdctl stats disk0 --per-queue || fail "stats --per-queue"
total=0
for ((q = 0; q < cpus; q++)); do
  carried=$(ebd_queue_stat disk0 "$q" requests) || fail "no counters for queue $q"
  [[ $carried -ge 16 ]] || fail "queue $q carried $carried requests, fewer than its CPU's reads"
  total=$((total + carried))
done
[[ $total == $(ebd_stat disk0 requests) ]] \
  || fail "the queues' requests ($total) do not add up to the disk's ($(ebd_stat disk0 requests))"
ebdctl detach disk0 || fail "detach"
[[ ! -e /dev/ebd0 ]] || fail "/dev/ebd0 still there after detach"

ebdctl attach --name again --netdev pnk0 --server "$(ip -n ebdsrv -br link show pnk1 | awk '{print $3}')" >/dev/null \
  || fail "re-attach with the server's address"
mount /dev/ebd0 "$EBD_MNT" || fail "mount after re-attach"
(cd "$EBD_MNT" && sha256sum --quiet -c /tmp/ebd-sums) || fail "checksums differ after re-attach"
umount "$EBD_MNT"
ebdctl detach again || fail "detach again"

# Two disks at once on one link: export 0 read-write, export 1 read-only.
ebdctl attach --name rw --netdev pnk0 --queues 1 >/dev/null || fail "attach export 0"
[[ $(ebd_stat rw queues) == 1 ]] || fail "--queues 1 gave $(ebd_stat rw queues) queues"
ebdctl attach --name ro --netdev pnk0 --export 1 >/dev/null || fail "attach export 1"
[[ $(blockdev --getro /dev/ebd1) == 1 ]] || fail "/dev/ebd1 of a read-only export is writable"
! dd if=/dev/zero of=/dev/ebd1 bs=4k count=1 oflag=direct 2>/dev/null || fail "write to a read-only export succeeded"
cmp <(dd if=/dev/ebd1 bs=1M iflag=direct 2>/dev/null) /tmp/ebd-ro.img || fail "export 1 reads back wrong"
mount -o ro /dev/ebd0 "$EBD_MNT" && (cd "$EBD_MNT" && sha256sum --quiet -c /tmp/ebd-sums) || fail "export 0 beside export 1"
umount "$EBD_MNT"
[[ $(ebd_stat ro drop_foreign) -gt 0 || $(ebd_stat rw drop_foreign) -gt 0 ]] \
  || fail "neither disk saw (and dropped) the other's responses"
ebdctl detach ro && ebdctl detach rw || fail "detach both"
echo "ext4 on ebd0 ($cpus queues, each carrying its CPU's I/O): $(wc -l </tmp/ebd-sums) files verified after detach and re-attach; two exports at once, one read-only, one with a single queue"
