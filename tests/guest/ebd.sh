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

# The link, server namespace and module the EBD scenarios need: the shared
# fixture. Under the batch runner (POLYNIC_FIXTURE=ebd) it is made once for
# every scenario that declares "# fixture: ebd" (tests/guest/fixtures/ebd.sh):
# setting it up and removing it cost half a minute per scenario under TCG.
# Such a scenario finds it here and leaves it as it found it (ebd_teardown
# mends what it changed). Run alone, a scenario makes and removes its own.
ebd_fixture_shared() { [[ ${POLYNIC_FIXTURE:-} == ebd ]]; }

# ebd_fixture_up [MTU]: makes whatever part of the fixture is missing and
# sets both ends to MTU (default 9000), up.
ebd_fixture_up() {
  local mtu=${1:-9000}
  if [[ ! -e /run/netns/ebdsrv ]]; then
    ip netns add ebdsrv || fail "netns"
    ip -n ebdsrv link set lo up
  fi
  if [[ ! -e /sys/class/net/pnk0 ]]; then
    # A namespace deleted with the old pair in it frees the pair later, in
    # the background: the old pnk1 may still hold its name for a while.
    local i
    for ((i = 0; i < 20; i++)); do
      ip link add pnk0 type veth peer name pnk1 netns ebdsrv 2>/dev/null && break
      pause 0.5
    done
    [[ -e /sys/class/net/pnk0 ]] || fail "veth"
  fi
  ip link set pnk0 mtu "$mtu" up || fail "pnk0 mtu $mtu"
  ip -n ebdsrv link set pnk1 mtu "$mtu" up || fail "pnk1 mtu $mtu"
  mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
  [[ -d /sys/module/ebd ]] || insmod "$(module_path ebd)" || fail "insmod ebd"
  [[ -d $EBD_MNT ]] || mkdir -p "$EBD_MNT"
}

# ebd_setup SIZE_MIB [MTU]: the fixture (shared or its own) and a new
# backing file.
ebd_setup() {
  local size=$1 mtu=${2:-9000}
  if ebd_fixture_shared; then
    [[ $mtu == 9000 ]] || ebd_fixture_up "$mtu"
  else
    ebd_fixture_up "$mtu"
  fi
  rm -f "$EBD_IMG"
  truncate -s "${size}M" "$EBD_IMG"
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
  { read -r pid </tmp/ebd-server.pid; } 2>/dev/null || return 0
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

# ebd_queue_stat NAME QUEUE COUNTER: one counter of queue QUEUE of disk
# NAME (its line in queue_stats: "queue N name=value ...").
ebd_queue_stat() {
  local line pair
  while read -r line; do
    [[ $line == "queue $2 "* ]] || continue
    for pair in $line; do
      [[ $pair == "$3="* ]] && { echo "${pair#*=}"; return 0; }
    done
  done <"$EBD_CFG/$1/queue_stats"
  return 1
}

# ebd_resends NAME: requests disk NAME sent again, early (the personality's
# retransmission timeout) or after its response timer.
ebd_resends() {
  echo $(($(ebd_stat "$1" early_resends) + $(ebd_stat "$1" retransmits)))
}

# ebd_server_pid: the running ebd-server's pid.
ebd_server_pid() {
  local pid
  read -r pid </tmp/ebd-server.pid && echo "$pid"
}

# ebd_teardown: removes what the scenario made (mount, disks, server) and
# then the fixture if it was the scenario's own; a shared fixture is mended
# instead (link re-made if gone, MTU 9000, up, no qdisc, module loaded).
ebd_teardown() {
  mountpoint -q "$EBD_MNT" && umount "$EBD_MNT"
  configfs_disks_off "$EBD_CFG"
  ebd_server_stop
  rm -f "$EBD_IMG"
  if ebd_fixture_shared; then
    if [[ -e /sys/class/net/pnk0 ]]; then
      tc qdisc del dev pnk0 root 2>/dev/null
      ip netns exec ebdsrv tc qdisc del dev pnk1 root 2>/dev/null
    fi
    ebd_fixture_up
    return 0
  fi
  ebd_fixture_down
}

# ebd_fixture_down: removes the fixture, whatever state it is in.
ebd_fixture_down() {
  rmmod ebd 2>/dev/null
  ip netns del ebdsrv 2>/dev/null
  ip link del pnk0 2>/dev/null
  return 0
}
