# shellcheck shell=bash
# Helpers for guest-side scenarios. Source from a scenario script; the VM
# runner sets POLYNIC_OUT, and test.sh sets POLYNIC_MODULES to the directory
# holding the built .ko files.
set -uo pipefail

# Starting a process costs 1-3 s in the TCG debug guest (fork, exec and the
# debug kernel's bookkeeping of every allocation), so these helpers use bash
# built-ins where they can.

# Path of the built module NAME (without .ko), in the places scripts/modules.sh
# puts them (listing the whole build tree over the guest's root file system
# took 12 s).
module_path() {
  : "${POLYNIC_MODULES:?POLYNIC_MODULES must name the built modules directory}"
  local m=$POLYNIC_MODULES p
  for p in "$m/$1.ko" "$m/modules/$1/$1.ko" "$m/modules/modules/$1/$1.ko" "$m"/tests/*/"$1.ko" \
    "$m"/tests/*/*/"$1.ko"; do
    [[ -f $p ]] && { echo "$p"; return 0; }
  done
  echo "module $1.ko not built in $POLYNIC_MODULES" >&2
  return 1
}

# pause SECONDS: sleep without starting a process. Reads from a pipe this
# shell holds both ends of, so nothing ever arrives and the read times out.
exec {PAUSE_FD}<> <(:)
pause() {
  read -rt "$1" -u "$PAUSE_FD" _ || :
}

# Save the KUnit results of every suite now, before unloading a module
# removes its suites. Bash built-ins only (starting a process costs seconds
# in the TCG guest), and mapfile, which reads in blocks: `read` seeks back
# after every line, and each seek re-renders a debugfs file from its start
# (reading the doctest suite's results line by line took 28 s).
save_kunit() {
  local r suite lines
  mkdir -p "$POLYNIC_OUT/kunit"
  for r in /sys/kernel/debug/kunit/*/results; do
    [[ -e $r ]] || continue
    suite=${r%/results}
    suite=${suite##*/}
    mapfile -t lines <"$r"
    printf '%s\n' "${lines[@]}" >"$POLYNIC_OUT/kunit/$suite.ktap"
  done
  return 0
}

# kv FILE KEY: the value on FILE's `KEY value` line (counters and stats
# files). The file is read in one go: configfs renders the whole file again
# for every read a line-by-line loop makes.
kv() {
  # One match over the whole text, not a loop: under the scenarios' trace
  # every loop iteration is a traced command, and a stats file has ~100
  # lines. The quoted key matches literally.
  local lines IFS=$'\n'
  mapfile -t lines <"$1"
  local text=$'\n'"${lines[*]}"$'\n'
  if [[ $text =~ $'\n'"$2 "([^$'\n']*)$'\n' ]]; then
    echo "${BASH_REMATCH[1]}"
    return 0
  fi
  echo "no $2 in $1" >&2
  return 1
}

# Fail the scenario with a message.
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# log_mark: a mark in the kernel log; log_since MARK prints what came after
# it. Scenarios share a boot, so none may clear the log (dmesg -C) that the
# runner slices per scenario.
log_mark() { dmesg | wc -l; }
log_since() { dmesg | tail -n +"$(($1 + 1))"; }

# fio_bench OUT NAME DEVICE RW BS QD JOBS: one timed fio workload on DEVICE
# ($RUNTIME seconds after a second's ramp), its JSON in OUT. Two jobs work
# on disjoint halves of the first 256 MiB, so neither rereads what the
# other just moved.
fio_bench() {
  local out=$1 name=$2 dev=$3 rw=$4 bs=$5 qd=$6 jobs=$7
  fio --name="$name" --filename="$dev" --rw="$rw" --bs="$bs" --iodepth="$qd" --numjobs="$jobs" \
    --size=$((256 / jobs))M --offset_increment=$((256 / jobs))M --ioengine=libaio --direct=1 \
    --time_based --runtime="${RUNTIME:?}" --ramp_time=1 --group_reporting --lat_percentiles=1 \
    --output-format=json --output="$out" >/dev/null 2>&1
}

# configfs_disks_off DIR: powers off and removes every disk directory under
# DIR (a storage driver's configfs subsystem).
configfs_disks_off() {
  local d
  for d in "$1"/*/; do
    [[ -d $d ]] || continue
    echo 0 >"$d/power"
    rmdir "$d"
  done
}
