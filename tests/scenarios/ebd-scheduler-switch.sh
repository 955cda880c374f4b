#!/bin/bash
# fixture: ebd (tests/guest/ebd.sh: shares the link, namespace and module)
# Switching the I/O scheduler of an EBD disk under random reads must not
# stall it (issue 8, item 16). Each switch freezes the queue: the block
# layer waits for every request in flight. A request whose frame was lost
# used to wait for the driver's response timer (2 s, plus the block layer's
# rounding of up to 1 s) with the whole disk stopped; the personality now
# resends it after its own retransmission timeout. So the link loses 1% of
# frames each way, and fio's 4K random reads with verification run first
# without switching, then while the scheduler changes every second (none,
# mq-deadline, kyber, bfq in turn). The switching run must keep at least
# half the IOPS of the other, lost frames must have been resent early, and
# nothing may fail. How long each switch took is printed.
source "${BASH_SOURCE[0]%/*}/../guest/lib.sh"
source "${BASH_SOURCE[0]%/*}/../guest/ebd.sh"
switcher=
trap 'kill "$switcher" 2>/dev/null; ebd_teardown' EXIT
ebd_setup 64
ebd_server_start
ebdctl attach --name sch --netdev pnk0 --timeout-ms 2000 >/dev/null || fail "attach"
sched=/sys/block/ebd0/queue/scheduler
for s in none mq-deadline kyber bfq; do
  grep -qw "$s" "$sched" || fail "the test kernel has no $s scheduler: $(<"$sched")"
done

# Known data to read back and verify, written over a clean link.
# Each 4 KiB carries its own verification header, so that 4 KiB random reads
# can check what they read.
fio --name=fill --filename=/dev/ebd0 --rw=write --bs=64k --size=16M --ioengine=libaio --iodepth=8 \
  --direct=1 --verify=crc32c --verify_interval=4k --do_verify=0 --output=/tmp/fio-fill.log >/dev/null 2>&1 \
  || fail "fill: $(grep -m3 -E 'err=|verify' /tmp/fio-fill.log)"
tc qdisc add dev pnk0 root netem loss 1% || fail "netem (client side)"
ip netns exec ebdsrv tc qdisc add dev pnk1 root netem loss 1% || fail "netem (server side)"

reads() { # reads NAME: prints the IOPS of a 10 s verified random-read run
  fio --name="$1" --filename=/dev/ebd0 --rw=randread --bs=4k --size=16M --ioengine=libaio --iodepth=32 \
    --direct=1 --verify=crc32c --verify_interval=4k --do_verify=1 --verify_fatal=1 --time_based --runtime=10 \
    --output-format=json --output=/tmp/fio-"$1".json >/tmp/fio-"$1".err 2>&1 \
    || { tail -5 /tmp/fio-"$1".err /tmp/fio-"$1".json >&2; return 1; }
  python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["jobs"][0]["read"]["iops"]))' /tmp/fio-"$1".json
}

early0=$(ebd_stat sch early_resends)
base=$(reads steady) || fail "random reads without switching"
: >/tmp/switch-ms
(
  while :; do
    for s in none mq-deadline kyber bfq; do
      t0=$EPOCHREALTIME
      echo "$s" >"$sched" || exit 1
      t1=$EPOCHREALTIME
      echo "$s $(((${t1/./} - ${t0/./}) / 1000))" >>/tmp/switch-ms
      pause 1
    done
  done
) &
switcher=$!
switching=$(reads switching) || fail "random reads while switching schedulers"
kill "$switcher"
wait "$switcher" 2>/dev/null
switcher=
echo none >"$sched"
tc qdisc del dev pnk0 root
ip netns exec ebdsrv tc qdisc del dev pnk1 root

mapfile -t took </tmp/switch-ms
early=$(($(ebd_stat sch early_resends) - early0))
echo "random read IOPS with 1% loss each way: $base steady, $switching while switching schedulers every second"
echo "${#took[@]} switches (to scheduler, ms): ${took[*]}"
echo "$early requests resent early, $(ebd_stat sch retransmits) after the driver's timeout;" \
  "retransmission timeout $(ebd_stat sch rto_ms) ms"
((${#took[@]} >= 4)) || fail "only ${#took[@]} scheduler switches in 10 s"
((early > 0)) || fail "no request resent early: 1% loss never met a request, the test proves nothing"
((switching * 2 >= base)) || fail "switching schedulers dropped IOPS from $base to $switching"
[[ $(ebd_stat sch failed) == 0 ]] || fail "$(ebd_stat sch failed) requests failed"
