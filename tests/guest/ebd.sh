# shellcheck shell=bash
# EBD set-up shared by the EBD scenarios: a server namespace on the far end
# of a veth pair, ebd-server on a sparse file there, the ebd module here.
# Source after lib.sh.

EBD_IMG=/tmp/ebd-export.img
EBD_CFG=/sys/kernel/config/ebd
EBD_MNT=/tmp/ebd-mnt

# ebd_need NAME: fails the scenario unless user-space tool NAME is built.
ebd_need() {
  : "${POLYNIC_BIN:?POLYNIC_BIN must name the user-space build directory}"
  [[ -x $POLYNIC_BIN/$1 ]] || fail "$1 not built in $POLYNIC_BIN"
}

# ebd_bin NAME: the path of user-space tool NAME.
ebd_bin() {
  ebd_need "$1"
  echo "$POLYNIC_BIN/$1"
}

# ebd_setup SIZE_MIB [MTU]: link, server namespace, module, backing file.
ebd_setup() {
  local size=$1 mtu=${2:-9000}
  ip netns add ebdsrv || fail "netns"
  ip link add pnk0 type veth peer name pnk1 || fail "veth"
  ip link set pnk1 netns ebdsrv
  ip link set pnk0 mtu "$mtu" up
  ip -n ebdsrv link set pnk1 mtu "$mtu" up
  ip -n ebdsrv link set lo up
  mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
  insmod "$(module_path ebd)" || fail "insmod ebd"
  rm -f "$EBD_IMG"
  truncate -s "${size}M" "$EBD_IMG"
  [[ -d $EBD_MNT ]] || mkdir -p "$EBD_MNT"
}

# ebd_server_start [EXTRA ARGS]: ebd-server in the server namespace.
ebd_server_start() {
  rm -f /tmp/ebd-server.pid
  ebd_need ebd-server
  ip netns exec ebdsrv "$POLYNIC_BIN/ebd-server" -i pnk1 -e "$EBD_IMG" --pid-file /tmp/ebd-server.pid "$@" \
    2>>/tmp/ebd-server.log &
  local i
  for ((i = 0; i < 100; i++)); do
    [[ -s /tmp/ebd-server.pid ]] && return 0
    pause 0.1
  done
  cat /tmp/ebd-server.log >&2
  fail "ebd-server did not start"
}

ebd_server_stop() {
  local sig=${1:-TERM} pid
  read -r pid </tmp/ebd-server.pid 2>/dev/null || return 0
  kill "-$sig" "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  rm -f /tmp/ebd-server.pid
}

ebdctl() {
  ebd_need ebdctl
  "$POLYNIC_BIN/ebdctl" "$@"
}

# ebd_stat NAME COUNTER: one counter of disk NAME.
ebd_stat() {
  local key value
  while read -r key value; do
    [[ $key == "$2" ]] && { echo "$value"; return 0; }
  done <"$EBD_CFG/$1/stats"
  return 1
}

# ebd_server_pid: the running ebd-server's pid.
ebd_server_pid() {
  local pid
  read -r pid </tmp/ebd-server.pid && echo "$pid"
}

# Tear everything down; leaves no disk, module or namespace behind.
ebd_teardown() {
  mountpoint -q "$EBD_MNT" && umount "$EBD_MNT"
  local d
  for d in "$EBD_CFG"/*/; do
    [[ -d $d ]] || continue
    echo 0 >"$d/power"
    rmdir "$d"
  done
  ebd_server_stop
  rmmod ebd 2>/dev/null
  ip netns del ebdsrv 2>/dev/null
  ip link del pnk0 2>/dev/null
  return 0
}
