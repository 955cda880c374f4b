#!/bin/bash
# fixture: ebd (tests/guest/ebd.sh: shares the link and the namespace)
# The AoE initiator against an unmodified vblade, with no ebd-server
# involved: discovery of the target's address, buffers and capacity (and
# of the target itself, when no shelf.slot is given); fio
# with crc32c verification on a clean link and under netem loss,
# reordering and duplication; ext4 on the disk, its files intact across a
# remount; hostile frames counted and dropped; a target that does not exist is a clear error, not a hang; and
# a target killed under I/O fails the I/O when the disk is powered off.
source "${BASH_SOURCE[0]%/*}/../guest/lib.sh"
source "${BASH_SOURCE[0]%/*}/../guest/ebd.sh"
source "${BASH_SOURCE[0]%/*}/../guest/aoei.sh"
trap 'aoei_teardown; ebd_teardown' EXIT
ebd_setup 1
ebd_server_stop
pgrep -x ebd-server && fail "ebd-server is running"

truncate -s 64M "$AOEI_IMG"
aoei_vblade_start 3 7
aoei_attach a 3.7 queue_depth=32 timeout_ms=300 retries=30 || fail "power on against vblade"
[[ -b /dev/aoei0 ]] || fail "no /dev/aoei0"
read -r name sectors buffers sector_count firmware <"$AOEI_CFG/a/disk"
echo "disk: $name $sectors sectors, target buffers $buffers, $sector_count sectors per command, firmware $firmware"
[[ $name == aoei0 && $sectors == $((64 * 2048)) ]] || fail "disk $name of $sectors sectors, not aoei0 of $((64 * 2048))"
[[ $(blockdev --getsize64 /dev/aoei0) == $((64 << 20)) ]] || fail "block device size"
server_mac=$(ip netns exec ebdsrv cat /sys/class/net/pnk1/address)
[[ $(cat "$AOEI_CFG/a/server") == "$server_mac" ]] || fail "bound $(cat "$AOEI_CFG/a/server"), not vblade's $server_mac"
# vblade's buffers are shared by the queues; its sectors per command set
# the payload of a frame.
[[ $(aoei_stat a payload_per_frame) == $((sector_count * 512)) ]] \
  || fail "payload $(aoei_stat a payload_per_frame) for $sector_count sectors per command"

verify_run() {
  fio --name="$1" --filename=/dev/aoei0 --rw=randwrite --bsrange=4k-64k --size="$2" \
    --ioengine=libaio --iodepth=16 --direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1 \
    --randrepeat=0 --output=/tmp/fio-aoei-"$1".log >/dev/null 2>&1
  local rc=$?
  grep -E "WRITE:|READ:|err=" /tmp/fio-aoei-"$1".log
  return $rc
}
verify_run clean 8M || fail "fio verify on a clean link"
# Data written through the initiator is in vblade's file, where it wrote it.
dd if=/dev/urandom of=/tmp/aoei-block bs=64k count=1 status=none
dd if=/tmp/aoei-block of=/dev/aoei0 bs=64k seek=100 oflag=direct status=none || fail "dd write"
cmp <(dd if="$AOEI_IMG" bs=64k skip=100 count=1 status=none) /tmp/aoei-block || fail "the export does not hold what was written"

before=$(($(aoei_stat a early_resends) + $(aoei_stat a retransmits)))
tc qdisc add dev pnk0 root netem delay 1ms loss 2% duplicate 2% reorder 25% 50% || fail "netem (initiator side)"
ip netns exec ebdsrv tc qdisc add dev pnk1 root netem delay 1ms loss 2% duplicate 2% reorder 25% 50% \
  || fail "netem (target side)"
verify_run lossy 4M || fail "fio verify with loss, reordering and duplication"
after=$(($(aoei_stat a early_resends) + $(aoei_stat a retransmits)))
[[ $after -gt $before ]] || fail "nothing resent under 2% loss"
tc qdisc del dev pnk0 root
ip netns exec ebdsrv tc qdisc del dev pnk1 root

mkfs.ext4 -q -F /dev/aoei0 || fail "mkfs.ext4"
mkdir -p /tmp/aoei-mnt
mount /dev/aoei0 /tmp/aoei-mnt || fail "mount"
dd if=/dev/urandom of=/tmp/aoei-mnt/data bs=1M count=8 status=none || fail "write a file"
want=$(sha256sum </tmp/aoei-mnt/data)
umount /tmp/aoei-mnt || fail "umount"
echo 3 >/proc/sys/vm/drop_caches
mount /dev/aoei0 /tmp/aoei-mnt || fail "mount again"
[[ $(sha256sum </tmp/aoei-mnt/data) == "$want" ]] || fail "the file changed across a remount"
umount /tmp/aoei-mnt
fsck.ext4 -n -f /dev/aoei0 >/dev/null || fail "fsck found errors"
[[ $(aoei_stat a failed) == 0 ]] || fail "$(aoei_stat a failed) requests failed"

# Hostile frames from the target's side: too short, another protocol
# version, another shelf and slot, an answer for a request nobody sent.
# Each is counted and dropped, and the disk goes on as before.
client_mac=$(tr -d : </sys/class/net/pnk0/address)
head="${client_mac}$(echo "$server_mac" | tr -d :)88a2"
ata=400000400000000000000000
declare -A before_drop
for c in drop_short drop_version drop_foreign drop_stale; do before_drop[$c]=$(aoei_stat a "$c"); done
"$(ebd_bin inject)" --netns ebdsrv --dev pnk1 --count 4000 "${head}18" "${head}28000003070000000001$ata" \
  "${head}18000009090000000001$ata" "${head}18000003070000000005$ata" || fail "inject"
pause 1
for c in drop_short drop_version drop_foreign drop_stale; do
  got=$(($(aoei_stat a "$c") - before_drop[$c]))
  ((got >= 1000)) || fail "$c counted $got of 1000 hostile frames"
done
verify_run after-hostile 2M || fail "fio verify after the hostile frames"
cat "$AOEI_CFG/a/stats"

# A target nobody serves: discovery gives up with ETIMEDOUT, in seconds.
mkdir "$AOEI_CFG/none"
echo pnk0 >"$AOEI_CFG/none/netdev"
echo 3.8 >"$AOEI_CFG/none/target"
start=$SECONDS
err=$( { echo 1 >"$AOEI_CFG/none/power"; } 2>&1) && fail "powered on a disk of a target nobody serves"
echo "no target: $err"
[[ $err == *"timed out"* ]] || fail "not a time-out: $err"
((SECONDS - start < 10)) || fail "discovery took $((SECONDS - start)) s"
# The broadcast shelf and slot are refused, as is anything but SHELF.SLOT.
for bad in 65535.1 1.255 1 1.2.3 x.1 70000.1; do
  echo "$bad" >"$AOEI_CFG/none/target" 2>/dev/null && fail "target $bad taken"
done
rmdir "$AOEI_CFG/none"

# Discovery of the target itself: the first to answer a Query Config sent
# to every shelf and slot is bound (vblade's 3.7), its address and size
# read as for a configured one.
mkdir "$AOEI_CFG/found"
echo pnk0 >"$AOEI_CFG/found/netdev"
[[ $(cat "$AOEI_CFG/found/target") == discover ]] || fail "a new disk's target is not discovered"
echo 1 >"$AOEI_CFG/found/power" || fail "power on a discovered target"
[[ $(cat "$AOEI_CFG/found/target") == 3.7 ]] || fail "discovered $(cat "$AOEI_CFG/found/target"), not 3.7"
read -r found_name found_sectors _ <"$AOEI_CFG/found/disk"
[[ $found_sectors == "$sectors" ]] || fail "$found_name of $found_sectors sectors, not $sectors"
cmp <(dd if=/dev/"$found_name" bs=1M count=4 iflag=direct status=none) <(dd if="$AOEI_IMG" bs=1M count=4 status=none) \
  || fail "the discovered disk does not read what the export holds"
echo 0 >"$AOEI_CFG/found/power"
rmdir "$AOEI_CFG/found"

# The target dies under I/O: powering off ends it with errors, no hang.
fio --name=gone --filename=/dev/aoei0 --rw=randwrite --bs=4k --size=16M --time_based --runtime=60 \
  --ioengine=libaio --iodepth=16 --direct=1 >/tmp/fio-aoei-gone.log 2>&1 &
fio_pid=$!
pause 2
aoei_vblade_stop KILL
pause 1
echo 0 >"$AOEI_CFG/a/power" || fail "power off with the target gone"
wait "$fio_pid" && fail "fio saw no error with the target gone"
[[ ! -b /dev/aoei0 ]] || fail "/dev/aoei0 still there"
echo "vblade interop: discovery, verify clean and lossy ($((after - before)) resent), ext4, errors"
