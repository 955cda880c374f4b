#!/bin/bash
# Tearing down under I/O never hangs or leaks: the disk powered off, the
# net device deleted, and the module unloaded while requests are in flight
# on every CPU's queue, each queue full (the server is frozen so that they
# cannot complete). Each time the I/O ends with errors.
source "${BASH_SOURCE[0]%/*}/../guest/lib.sh"
source "${BASH_SOURCE[0]%/*}/../guest/ebd.sh"
trap ebd_teardown EXIT
ebd_setup 64
ebd_server_start

# start_stuck_io: writes on every CPU that cannot complete while the
# server is stopped; each CPU's queue fills to its depth on its own.
start_stuck_io() {
  local q
  ebdctl attach --name td --netdev pnk0 --queue-depth 8 --timeout-ms 1000 --retries 30 >/dev/null || fail "attach"
  queues=$(ebd_stat td queues)
  kill -STOP "$(ebd_server_pid)"
  dd_pids=()
  for ((q = 0; q < queues; q++)); do
    taskset -c "$q" dd if=/dev/zero of=/dev/ebd0 bs=16M count=1 seek="$q" oflag=direct 2>/tmp/dd$q.log &
    dd_pids+=($!)
  done
  pause 2
  for q in "${!dd_pids[@]}"; do
    kill -0 "${dd_pids[$q]}" 2>/dev/null || fail "dd on CPU $q finished although the server is stopped"
    [[ $(ebd_queue_stat td "$q" queue_len) == 8 ]] \
      || fail "queue $q holds $(ebd_queue_stat td "$q" queue_len) requests, not its depth of 8"
  done
}

# expect_io_error: every dd ends by itself, with an error, within 30 s.
expect_io_error() {
  local i pid alive
  for ((i = 1; i <= 30; i++)); do
    alive=0
    for pid in "${dd_pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    pause 1
  done
  ((alive)) && fail "$1: I/O still hanging after 30 s"
  for pid in "${dd_pids[@]}"; do wait "$pid" && fail "$1: a dd succeeded"; done
  kill -CONT "$(ebd_server_pid)"
  echo "$1: I/O on $queues queues ended with: $(grep -h "^dd: " /tmp/dd*.log | sort -u | tr '\n' ' ')"
}

# 1. Power off during I/O.
start_stuck_io
echo 0 >"$EBD_CFG/td/power" || fail "power off"
expect_io_error "power off"
rmdir "$EBD_CFG/td" || fail "rmdir"

# 2. The net device deleted during I/O.
start_stuck_io
ip link del pnk0 || fail "veth delete"
expect_io_error "veth deleted"
[[ $(ebd_stat td detached) == 1 ]] || fail "personality not detached after the device went away"
for ((q = 0; q < queues; q++)); do
  [[ $(ebd_queue_stat td "$q" queue_len) == 0 && $(ebd_queue_stat td "$q" failed) -ge 8 ]] \
    || fail "queue $q after the device went away: $(grep "^queue $q " "$EBD_CFG/td/queue_stats")"
done
echo 0 >"$EBD_CFG/td/power" && rmdir "$EBD_CFG/td" || fail "remove after veth delete"
ip link add pnk0 type veth peer name pnk1 && ip link set pnk1 netns ebdsrv || fail "veth re-create"
ip link set pnk0 up && ip -n ebdsrv link set pnk1 up
ebd_server_stop
ebd_server_start

# 3. The module unloaded during I/O (after its disks are removed; configfs
# holds the module while a disk directory exists).
start_stuck_io
! rmmod ebd 2>/dev/null || fail "rmmod succeeded while a disk exists"
echo 0 >"$EBD_CFG/td/power" && rmdir "$EBD_CFG/td" && rmmod ebd || fail "unload during I/O"
expect_io_error "module unloaded"
echo "power off, veth delete and module unload under I/O on $queues full queues: no hang, I/O errors reported"
