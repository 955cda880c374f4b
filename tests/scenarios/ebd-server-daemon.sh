#!/bin/bash
# fixture: ebd (tests/guest/ebd.sh: shares the link, namespace and module)
# ebd-server is a daemon: it rides out its link going down and up and its
# MTU being lowered and restored, while fio writes and verifies (crc32c) on
# /dev/ebd0. Afterwards the same server process is still serving, fio saw
# no verify error; a read past the end of its export, cut short under it,
# fails on the client while the server goes on; and the server stops
# cleanly on SIGTERM.
source "${BASH_SOURCE[0]%/*}/../guest/lib.sh"
source "${BASH_SOURCE[0]%/*}/../guest/ebd.sh"
trap ebd_teardown EXIT
ebd_setup 64
ebd_server_start
pid=$(ebd_server_pid)
# Retransmission must outlast a few seconds of dead link: 300 ms doubling
# reaches 4.5 s after four tries.
ebdctl attach --name dm --netdev pnk0 --queue-depth 16 --timeout-ms 300 --retries 30 >/dev/null || fail "attach"

verify_run() {
  local name=$1
  fio --name="$name" --filename=/dev/ebd0 --rw=randwrite --bsrange=4k-64k --size=4M \
    --ioengine=libaio --iodepth=16 --direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1 \
    --randrepeat=0 --output=/tmp/fio-"$name".log >/dev/null 2>&1
  local rc=$?
  grep -E "WRITE:|READ:|err=" /tmp/fio-"$name".log
  return $rc
}

# The link events, in the server's namespace, while fio runs round after
# round: down for 2 s, then the MTU at 1500 for 3 s (the client's frames
# stay 9000 bytes: its large frames are dropped and its reads go
# unanswered until the MTU is back).
link_events() {
  pause 1
  ip -n ebdsrv link set pnk1 down
  pause 2
  ip -n ebdsrv link set pnk1 up
  pause 2
  ip -n ebdsrv link set pnk1 mtu 1500
  pause 3
  ip -n ebdsrv link set pnk1 mtu 9000
  pause 2
}
link_events &
events=$!
round=0
while ((round == 0)) || kill -0 "$events" 2>/dev/null; do
  verify_run "round$round" || fail "fio verify (round $round) across link down/up and MTU changes"
  round=$((round + 1))
done
wait "$events"
# Once more on a settled link: the server answers in full-size frames again.
verify_run settled || fail "fio verify after the link settled"

kill -0 "$pid" 2>/dev/null || { cat /tmp/ebd-server.log >&2; fail "ebd-server exited"; }
[[ $(ebd_server_pid) == "$pid" ]] || fail "ebd-server was restarted"
[[ $(ebd_stat dm failed) == 0 ]] || fail "$(ebd_stat dm failed) requests failed"
[[ $(ebd_resends dm) -gt 0 ]] || fail "nothing resent: the link events did not meet any I/O"
grep -q "waiting for the link\|link down" /tmp/ebd-server.log || fail "the link going down was not logged"
grep -q "MTU 1500" /tmp/ebd-server.log || fail "the lowered MTU was not noticed"
grep -q "MTU 9000" /tmp/ebd-server.log || fail "the restored MTU was not noticed"
# Its receive rings' slots are sized for the MTU: each change re-opens them.
grep -q "MTU 1500 now; opening its sockets again" /tmp/ebd-server.log || fail "the rings were not re-sized for MTU 1500"

# The export cut short under the server: it answers reads from a mapping of
# the file, and a read past the new end must fail on the client (not hang,
# not kill the server), reads before it must still work, and the server
# must say it copies reads from then on.
truncate -s 32M "$EBD_IMG"
timeout 30 dd if=/dev/ebd0 of=/dev/null bs=64k count=1 skip=$((48 * 16)) iflag=direct status=none 2>/tmp/dd-cut.err \
  && fail "a read past the end of the shortened export succeeded"
(($? != 124)) || fail "a read past the end of the shortened export hung"
grep -qi "error" /tmp/dd-cut.err || fail "the read past the end failed without an I/O error: $(cat /tmp/dd-cut.err)"
kill -0 "$pid" 2>/dev/null || { cat /tmp/ebd-server.log >&2; fail "ebd-server died when its export was cut short"; }
grep -q "reads are copied from now on" /tmp/ebd-server.log || fail "sending from the shortened mapping was not noticed"
dd if=/dev/ebd0 of=/dev/null bs=64k count=16 iflag=direct status=none || fail "a read before the new end failed"
truncate -s 64M "$EBD_IMG"
ebdctl stats dm
ebd_server_stop TERM
grep -q "ebd-server: stopped;" /tmp/ebd-server.log || fail "no clean stop on SIGTERM"
grep "ebd-server:" /tmp/ebd-server.log
echo "fio verified $round round(s) across a link flap and an MTU drop; the server (pid $pid) kept serving"
