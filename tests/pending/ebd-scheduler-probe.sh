#!/bin/bash
# Experiment (not a test): EBD random-read IOPS per scheduler held fixed,
# then while switching, with the disk's counters after each run.
source "${BASH_SOURCE[0]%/*}/../guest/lib.sh"
source "${BASH_SOURCE[0]%/*}/../guest/ebd.sh"
switcher=
trap 'kill "$switcher" 2>/dev/null; ebd_teardown' EXIT
ebd_setup 64
ebd_server_start
ebdctl attach --name sch --netdev pnk0 >/dev/null || fail "attach"
sched=/sys/block/ebd0/queue/scheduler
cat $sched
fio --name=fill --filename=/dev/ebd0 --rw=write --bs=64k --size=32M --ioengine=libaio --iodepth=8 \
  --direct=1 --output=/tmp/fio-fill.log >/dev/null 2>&1 || fail "fill"
reads() {
  fio --name="$1" --filename=/dev/ebd0 --rw=randread --bs=4k --size=32M --ioengine=libaio --iodepth=32 \
    --direct=1 --time_based --runtime=8 --output-format=json --output=/tmp/fio-"$1".json >/dev/null 2>&1 || return 1
  python3 -c 'import json,sys; j=json.load(open(sys.argv[1]))["jobs"][0]["read"]; print(int(j["iops"]), "iops; clat p50/p99/max us", j["clat_ns"]["percentile"]["50.000000"]//1000, j["clat_ns"]["percentile"]["99.000000"]//1000, j["clat_ns"]["max"]//1000)' /tmp/fio-"$1".json
}
stats() { tr '\n' ' ' <"$EBD_CFG/sch/stats"; echo; }
for s in none mq-deadline kyber none; do
  echo "$s" >"$sched"
  echo "== $s: $(reads "$s")"
  stats
done
( while :; do for s in none mq-deadline kyber; do echo "$s" >"$sched" 2>/dev/null; pause 1; done; done ) &
switcher=$!
echo "== switching: $(reads switching)"
kill $switcher; wait $switcher 2>/dev/null
stats
echo none >"$sched"
( while :; do for s in none mq-deadline; do echo "$s" >"$sched" 2>/dev/null; pause 1; done; done ) &
switcher=$!
echo "== switching none/mq-deadline: $(reads switching2)"
kill $switcher; wait $switcher 2>/dev/null
stats
cat /tmp/ebd-server.log | tail -5
