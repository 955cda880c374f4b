#!/bin/bash
# Guest side of the KUnit run: kunit.sh MODULE.ko...
# Loads each module (its suites run at load), saves every suite's results,
# then unloads the modules again so that unload paths and leaks are checked.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
status=0
loaded=()
# Devices the overlay suites run against: loopback and a veth pair (only
# when the overlay suites are among the modules).
ip link set lo up
veth=0
[[ " $* " == *polynic_overlay_kunit.ko* ]] && veth=1
if ((veth)); then
  ip link add pnk0 type veth peer name pnk1 || status=1
  ip link set pnk0 up && ip link set pnk1 up || status=1
  # Wait (up to 5 s) for carrier on the pair.
  for _ in $(seq 50); do
    [[ $(cat /sys/class/net/pnk0/carrier 2>/dev/null) == 1 ]] && break
    sleep 0.1
  done
fi
for ko in "$@"; do
  if insmod "$ko"; then
    loaded+=("$(basename "$ko" .ko)")
  else
    echo "insmod $ko failed" >&2
    status=1
  fi
done
echo "$(date +%T) modules loaded; saving results"
save_kunit
echo "$(date +%T) results saved; unloading"
for ((i = ${#loaded[@]} - 1; i >= 0; i--)); do
  rmmod "${loaded[i]}" || { echo "rmmod ${loaded[i]} failed" >&2; status=1; }
done
if ((veth)); then ip link del pnk0 || status=1; fi
echo "$(date +%T) done"
exit $status
