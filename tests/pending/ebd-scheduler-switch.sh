#!/bin/bash
# Switching the I/O scheduler of an EBD disk under random reads must not
# stall it: fio 4K random reads with verification, first without switching,
# then while the scheduler changes every second (none, mq-deadline, kyber,
# bfq in turn, those the kernel has: the test kernel has no bfq yet). The switching run must keep at least half the IOPS of the
# run without, and verify clean. (A regression once dropped it to ~70 IOPS.)
source "$(dirname "${BASH_SOURCE[0]}")/../guest/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../guest/ebd.sh"
trap 'kill "$switcher" 2>/dev/null; ebd_teardown' EXIT
ebd_setup 64
ebd_server_start
ebdctl attach --name sch --netdev pnk0 >/dev/null || fail "attach"
sched=/sys/block/ebd0/queue/scheduler

# Known data to read back and verify.
fio --name=fill --filename=/dev/ebd0 --rw=write --bs=64k --size=32M --ioengine=libaio --iodepth=8 \
  --direct=1 --verify=crc32c --do_verify=0 --output=/tmp/fio-fill.log >/dev/null 2>&1 || fail "fill"

reads() { # reads NAME: prints IOPS of a 12 s verified random-read run
  fio --name="$1" --filename=/dev/ebd0 --rw=randread --bs=4k --size=32M --ioengine=libaio --iodepth=32 \
    --direct=1 --verify=crc32c --verify_only=0 --do_verify=1 --verify_fatal=1 --time_based --runtime=12 \
    --output-format=json --output=/tmp/fio-"$1".json >/dev/null 2>&1 || return 1
  python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["jobs"][0]["read"]["iops"]))' /tmp/fio-"$1".json
}

base=$(reads steady) || fail "random reads without switching"
(
  while :; do
    for s in none mq-deadline kyber bfq; do
      grep -qw "$s" "$sched" && echo "$s" >"$sched" 2>/dev/null
      sleep 1
    done
  done
) &
switcher=$!
switching=$(reads switching) || fail "random reads while switching schedulers"
kill "$switcher"
wait "$switcher" 2>/dev/null
echo none >"$sched"
echo "random read IOPS: $base steady, $switching while switching schedulers every second"
((switching * 2 >= base)) || fail "switching schedulers dropped IOPS from $base to $switching"
