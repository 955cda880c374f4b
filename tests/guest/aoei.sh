# shellcheck shell=bash
# AoE set-up shared by the aoei scenarios and the bench: an unmodified
# vblade in the server namespace of the EBD fixture (tests/guest/ebd.sh),
# the aoei module here. Source after lib.sh and ebd.sh.

AOEI_IMG=/tmp/aoei-export.img
AOEI_CFG=/sys/kernel/config/aoei

# aoei_vblade_start SHELF SLOT: vblade exporting $AOEI_IMG as SHELF.SLOT on
# pnk1; its pid in /tmp/vblade.pid.
aoei_vblade_start() {
  command -v vblade >/dev/null || fail "vblade is not installed (scripts/setup.sh installs it)"
  ip netns exec ebdsrv vblade "$1" "$2" pnk1 "$AOEI_IMG" >>/tmp/vblade.log 2>&1 &
  echo $! >/tmp/vblade.pid
  # vblade has no readiness signal: it is ready once it holds its socket.
  local i
  for ((i = 0; i < 50; i++)); do
    ip netns exec ebdsrv ss -0 -a 2>/dev/null | grep -q . && return 0
    pause 0.1
  done
  return 0
}

aoei_vblade_stop() {
  local pid
  { read -r pid </tmp/vblade.pid; } 2>/dev/null || return 0
  kill "-${1:-TERM}" "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  rm -f /tmp/vblade.pid
}

# aoei_attach NAME SHELF.SLOT [ATTR=VALUE...]: makes disk NAME on pnk0 for
# target SHELF.SLOT, sets the attributes given and powers it on.
aoei_attach() {
  local name=$1 target=$2 kv
  shift 2
  mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
  [[ -d /sys/module/aoei ]] || insmod "$(module_path aoei)" || fail "insmod aoei"
  mkdir "$AOEI_CFG/$name" || fail "mkdir $AOEI_CFG/$name"
  echo pnk0 >"$AOEI_CFG/$name/netdev" || fail "netdev"
  echo "$target" >"$AOEI_CFG/$name/target" || fail "target $target"
  for kv in "$@"; do
    echo "${kv#*=}" >"$AOEI_CFG/$name/${kv%%=*}" || fail "$kv"
  done
  echo 1 >"$AOEI_CFG/$name/power"
}

# aoei_stat NAME COUNTER: one counter of disk NAME.
aoei_stat() {
  awk -v k="$2" '$1 == k { print $2 }' "$AOEI_CFG/$1/stats"
}

# aoei_teardown: every aoei disk off and gone, the module and vblade too.
aoei_teardown() {
  configfs_disks_off "$AOEI_CFG"
  rmmod aoei 2>/dev/null
  aoei_vblade_stop
  rm -f "$AOEI_IMG"
}
