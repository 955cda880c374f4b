#!/bin/bash
# The overlay's blk-mq additions, driven from user space through
# polynic_blk_test (/dev/pnkblk0, RAM-backed): queue limits and features as
# the block layer sees them, data round trips through request pages,
# discard and write-zeroes, a filesystem, and the timeout hook ending a
# request that never completes.
source "${BASH_SOURCE[0]%/*}/../guest/lib.sh"
ko=$(module_path polynic_blk_test) || exit 1
dev=/dev/pnkblk0
q=/sys/block/pnkblk0/queue
expect() { # expect WHAT GOT WANT
  [[ $2 == "$3" ]] || fail "$1: got '$2', want '$3'"
}

insmod "$ko" || fail "insmod"
[[ -b $dev ]] || fail "$dev missing"
expect capacity "$(cat /sys/block/pnkblk0/size)" 32768
expect max_hw_sectors_kb "$(cat $q/max_hw_sectors_kb)" 32
expect max_segments "$(cat $q/max_segments)" 8
expect max_segment_size "$(cat $q/max_segment_size)" 4096
expect physical_block_size "$(cat $q/physical_block_size)" 4096
expect write_cache "$(cat $q/write_cache)" "write back"
expect fua "$(cat $q/fua)" 1
expect discard_max_hw_bytes "$(cat $q/discard_max_hw_bytes)" $((2048 * 512))
expect write_zeroes_max_bytes "$(cat $q/write_zeroes_max_bytes)" $((2048 * 512))

# Data round trip, large direct I/O split by the 32 KiB limit, at an offset.
work=$(mktemp -d)
head -c $((3 << 20)) /dev/urandom >"$work/pattern"
dd if="$work/pattern" of=$dev bs=1M seek=1 oflag=direct status=none || fail "write"
dd if=$dev of="$work/back" bs=1M skip=1 count=3 iflag=direct status=none || fail "read"
cmp -s "$work/pattern" "$work/back" || fail "data read back differs"
# Unaligned-to-page 512-byte I/O.
dd if="$work/pattern" of=$dev bs=512 count=3 seek=7 oflag=direct status=none || fail "small write"
dd if=$dev of="$work/small" bs=512 count=3 skip=7 iflag=direct status=none || fail "small read"
cmp -s <(head -c 1536 "$work/pattern") "$work/small" || fail "512-byte I/O differs"

# Discard and write-zeroes reach the driver and zero the range.
blkdiscard -o $((1 << 20)) -l $((1 << 20)) $dev || fail "discard"
blkdiscard -z -o $((2 << 20)) -l $((1 << 20)) $dev || fail "write-zeroes"
cmp -s <(head -c $((2 << 20)) /dev/zero) <(dd if=$dev bs=1M skip=1 count=2 iflag=direct status=none) \
  || fail "discarded/zeroed range is not zero"
cmp -s <(tail -c $((1 << 20)) "$work/pattern") <(dd if=$dev bs=1M skip=3 count=1 iflag=direct status=none) \
  || fail "data next to the zeroed range changed"

# A filesystem with flushes and FUA writes.
mkfs.ext4 -q -F $dev || fail "mkfs"
mkdir -p "$work/mnt"
mount $dev "$work/mnt" || fail "mount"
cp "$work/pattern" "$work/mnt/file"
sync
umount "$work/mnt" || fail "umount"
mount $dev "$work/mnt" || fail "remount"
cmp -s "$work/pattern" "$work/mnt/file" || fail "file differs after remount"
umount "$work/mnt"
rmmod polynic_blk_test || fail "rmmod"

# The timeout hook: a read of the black-hole sector never completes until
# the hook ends it with an error (timeout 1.5 s).
insmod "$ko" black_hole_sector=100 || fail "insmod with black hole"
mark=$(log_mark)
start=$(date +%s)
if dd if=$dev of=/dev/null bs=512 skip=100 count=1 iflag=direct status=none; then
  fail "read of the black-hole sector succeeded"
fi
elapsed=$(($(date +%s) - start))
held=$(log_since "$mark" | sed -n 's/.*tag \([0-9]*\) at sector 100 held.*/\1/p' | head -n1)
[[ -n $held ]] || fail "black-hole request not seen"
log_since "$mark" | grep -q "tag $held timed out" || fail "timeout hook did not run"
log_since "$mark" | grep -q "tag $held found in flight" || fail "timed-out request not found by tag"
((elapsed < 60)) || fail "timed-out read took ${elapsed}s"
dd if=$dev of=/dev/null bs=512 count=1 iflag=direct status=none || fail "normal read after timeout"
rmmod polynic_blk_test || fail "rmmod after timeout"

# A request queue_rq refused goes back to blk-mq, so looking its tag up must
# not hand out a reference (it would be to a request blk-mq owns). The
# refused read (sector 200) is retried until the black-hole read (sector
# 100) times out; that timeout hook probes the refused tag, then lets it
# through.
insmod "$ko" black_hole_sector=100 refused_sector=200 || fail "insmod with refusals"
mark=$(log_mark)
dd if=$dev of=/dev/null bs=512 skip=100 count=1 iflag=direct status=none &
hole=$!
pause 1
dd if=$dev of=/dev/null bs=512 skip=200 count=1 iflag=direct status=none || fail "refused read never succeeded"
wait $hole && fail "read of the black-hole sector succeeded"
log_since "$mark" | grep -q "refusing tag" || fail "the refused request was not refused"
log_since "$mark" | grep -q "handed out by the lookup" && fail "tag lookup handed out a request blk-mq owns"
log_since "$mark" | grep -q "not found: owned by blk-mq" || fail "the refused tag was not probed"
rmmod polynic_blk_test || fail "rmmod after refusals"
echo "blk-mq overlay scenario passed (timeout ended the request after ${elapsed}s)"
