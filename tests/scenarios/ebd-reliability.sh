#!/bin/bash
# fixture: ebd (tests/guest/ebd.sh: shares the link, namespace and module)
# Data integrity under a hostile link and a crashing server: fio writes with
# crc32c verification on a clean link, then with netem loss, reordering and
# duplication in both directions (one writer per CPU, so every queue resends
# its own losses), then through a device that refuses frames (netem with
# a queue of 8: NET_XMIT_DROP), then while ebd-server is killed with SIGKILL and
# restarted. No verify error may occur and nothing may fail.
source "${BASH_SOURCE[0]%/*}/../guest/lib.sh"
source "${BASH_SOURCE[0]%/*}/../guest/ebd.sh"
trap ebd_teardown EXIT
ebd_setup 64
ebd_server_start
ebdctl attach --name rel --netdev pnk0 --queue-depth 32 --timeout-ms 300 --retries 30 >/dev/null || fail "attach"

# verify_run NAME SIZE [JOBS]: JOBS (one per CPU, each on its own CPU and
# so its own queue) write SIZE each, side by side, and verify it.
verify_run() {
  local name=$1 size=$2 jobs=${3:-1} spread=()
  ((jobs > 1)) && spread=(--numjobs="$jobs" --offset_increment="$size" --cpus_allowed=0-$((jobs - 1)) --cpus_allowed_policy=split)
  fio --name="$name" --filename=/dev/ebd0 --rw=randwrite --bsrange=4k-64k --size="$size" "${spread[@]}" \
    --ioengine=libaio --iodepth=16 --direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1 \
    --randrepeat=0 --output=/tmp/fio-"$name".log >/dev/null 2>&1
  local rc=$?
  grep -E "WRITE:|READ:|err=" /tmp/fio-"$name".log
  return $rc
}

verify_run clean 4M || fail "fio verify on a clean link"
before=$(ebd_resends rel)
queues=$(ebd_stat rel queues)
queue_resends() { echo $(($(ebd_queue_stat rel "$1" early_resends) + $(ebd_queue_stat rel "$1" retransmits))); }
queue_before=()
for ((q = 0; q < queues; q++)); do queue_before+=("$(queue_resends "$q")"); done

tc qdisc add dev pnk0 root netem delay 1ms loss 2% duplicate 2% reorder 25% 50% || fail "netem (client side)"
ip netns exec ebdsrv tc qdisc add dev pnk1 root netem delay 1ms loss 2% duplicate 2% reorder 25% 50% \
  || fail "netem (server side)"
verify_run lossy 2M "$queues" || fail "fio verify with loss, reordering and duplication"
after=$(ebd_resends rel)
[[ $after -gt $before ]] || fail "nothing resent under 2% loss (before $before, after $after)"
# Every queue recovers its own losses.
for ((q = 0; q < queues; q++)); do
  [[ $(queue_resends "$q") -gt ${queue_before[$q]} ]] || fail "queue $q resent nothing under 2% loss"
done
[[ $(ebd_stat rel drop_duplicate) -gt 0 || $(ebd_stat rel drop_stale) -gt 0 ]] || fail "duplicates not seen"
tc qdisc del dev pnk0 root
ip netns exec ebdsrv tc qdisc del dev pnk1 root

# A device that refuses frames at times: netem on the client's interface
# holding each frame 1 ms in a queue of 8 refuses (NET_XMIT_DROP) what a
# burst of 1 MiB writes sends beyond it. Those frames are taken back and
# sent again, and nothing is lost or fails.
refused_before=$(ebd_stat rel tx_refused) || fail "no tx_refused counter"
tc qdisc add dev pnk0 root netem delay 1ms limit 8 || fail "netem limit 8"
fio --name=refused --filename=/dev/ebd0 --rw=write --bs=1M --size=32M --ioengine=libaio --iodepth=16 \
  --direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1 --output=/tmp/fio-refused.log >/dev/null 2>&1 \
  || fail "fio verify with a device that refuses frames: $(grep -E "err=|verify" /tmp/fio-refused.log)"
tc qdisc del dev pnk0 root
grep -E "WRITE:|READ:" /tmp/fio-refused.log
refused=$(($(ebd_stat rel tx_refused) - refused_before))
((refused > 0)) || fail "no frame refused by a queue of 8"

verify_run crash 8M &
fio_pid=$!
pause 3
ebd_server_stop KILL
pause 2
ebd_server_start
wait "$fio_pid" || fail "fio verify across an ebd-server SIGKILL and restart"
[[ $(ebd_stat rel failed) == 0 ]] || fail "$(ebd_stat rel failed) requests failed"
[[ $(ebd_stat rel timeouts) == 0 ]] || fail "requests timed out"
ebdctl stats rel
echo "no verify errors: clean, lossy ($((after - before)) requests resent), $refused frames refused by the device and sent again, server killed and restarted"
