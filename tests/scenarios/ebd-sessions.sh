#!/bin/bash
# fixture: ebd (tests/guest/ebd.sh: shares the link, namespace and module)
# Sessions keep disks apart and make late duplicates harmless (wire v2).
#
# 1. Two disks of the same export on one net device, side by side: fio
#    writes and verifies a different region through each at the same time.
#    With per-disk sessions neither completes the other's requests.
# 2. Stale duplicates: the link delays frames by more than the disk's
#    timeout and duplicates some, so copies of a write arrive after the
#    write was retransmitted, acknowledged and overwritten. fio rewrites the
#    same small region over and over and verifies it; the server must never
#    execute a late copy of a finished write.
source "${BASH_SOURCE[0]%/*}/../guest/lib.sh"
source "${BASH_SOURCE[0]%/*}/../guest/ebd.sh"
trap ebd_teardown EXIT
ebd_setup 64
ebd_server_start
ebdctl attach --name one --netdev pnk0 --export 0 >/dev/null || fail "attach one"
ebdctl attach --name two --netdev pnk0 --export 0 >/dev/null || fail "attach two"
[[ -b /dev/ebd0 && -b /dev/ebd1 ]] || fail "two disks expected"
s1=$(ebd_stat one session) s2=$(ebd_stat two session)
[[ -n $s1 && -n $s2 && $s1 != "$s2" ]] || fail "sessions not distinct: '$s1' '$s2'"

region() { # region DEV OFFSET NAME
  fio --name="$3" --filename="$1" --offset="$2" --size=2M --rw=randwrite --bs=4k --ioengine=libaio --iodepth=16 \
    --direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1 --randrepeat=0 --output=/tmp/fio-"$3".log \
    >/dev/null 2>&1
}
region /dev/ebd0 0 one & p1=$!
region /dev/ebd1 16M two & p2=$!
wait $p1 || fail "fio verify on disk one: $(grep -E 'err=|verify' /tmp/fio-one.log | head -3)"
wait $p2 || fail "fio verify on disk two: $(grep -E 'err=|verify' /tmp/fio-two.log | head -3)"
for d in one two; do
  [[ $(ebd_stat $d failed) -eq 0 ]] || fail "disk $d failed requests"
done
echo "two disks of one export verified side by side (sessions $s1, $s2)"
ebdctl detach two >/dev/null || fail "detach two"
ebdctl detach one >/dev/null || fail "detach one"

# Late duplicates: timeout 200 ms, delay 300 ms +- 100 ms and 25% duplicates
# on requests (so a copy of a write can land ~400 ms late, after its
# retransmission was acknowledged and the sectors rewritten).
ebdctl attach --name late --netdev pnk0 --queue-depth 8 --timeout-ms 200 --retries 40 >/dev/null \
  || fail "attach late"
dev=/dev/$(cut -d" " -f1 "$EBD_CFG/late/disk")
tc qdisc add dev pnk0 root netem delay 300ms 100ms duplicate 25% || fail "netem"
for round in 1 2 3; do
  fio --name=late$round --filename="$dev" --size=256k --rw=randwrite --bs=4k --ioengine=libaio --iodepth=8 \
    --direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1 --randrepeat=0 --number_ios=128 \
    --output=/tmp/fio-late$round.log >/dev/null 2>&1 || fail "fio verify with late duplicates, round $round: $(grep -E 'err=|verify' /tmp/fio-late$round.log | head -3)"
done
tc qdisc del dev pnk0 root
retrans=$(ebd_resends late)
((retrans > 0)) || fail "nothing resent: the delay never exceeded the timeout, the test proves nothing"
echo "rewrites verified under late duplicates ($retrans requests resent)"
