#!/bin/bash
# Tearing down under I/O never hangs or leaks: the disk powered off, the
# net device deleted, and the module unloaded while requests are in flight
# (the server is frozen so that they cannot complete). Each time the I/O
# ends with errors.
source "${BASH_SOURCE[0]%/*}/../guest/lib.sh"
source "${BASH_SOURCE[0]%/*}/../guest/ebd.sh"
trap ebd_teardown EXIT
ebd_setup 64
ebd_server_start

# start_stuck_io: writes that cannot complete while the server is stopped.
start_stuck_io() {
  ebdctl attach --name td --netdev pnk0 --timeout-ms 1000 --retries 30 >/dev/null || fail "attach"
  kill -STOP "$(ebd_server_pid)"
  dd if=/dev/urandom of=/dev/ebd0 bs=1M count=32 oflag=direct 2>/tmp/dd.log &
  dd_pid=$!
  pause 2
  kill -0 "$dd_pid" 2>/dev/null || fail "dd finished although the server is stopped"
  [[ $(ebd_stat td queue_len) -gt 0 ]] || fail "nothing in flight"
}

# expect_io_error: dd ends by itself, with an error, within 30 s.
expect_io_error() {
  local i
  for ((i = 1; i <= 30; i++)); do kill -0 "$dd_pid" 2>/dev/null || break; pause 1; done
  kill -0 "$dd_pid" 2>/dev/null && fail "$1: I/O still hanging after 30 s"
  wait "$dd_pid" && fail "$1: dd succeeded"
  kill -CONT "$(ebd_server_pid)"
  echo "$1: I/O ended with: $(tail -n1 /tmp/dd.log)"
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
echo "power off, veth delete and module unload under I/O: no hang, I/O errors reported"
