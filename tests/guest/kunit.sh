#!/bin/bash
# Guest side of the KUnit run: kunit.sh MODULE.ko...
# Loads each module (its suites run at load), saves every suite's results,
# then unloads the modules again so that unload paths and leaks are checked.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
status=0
loaded=()
for ko in "$@"; do
  if insmod "$ko"; then
    loaded+=("$(basename "$ko" .ko)")
  else
    echo "insmod $ko failed" >&2
    status=1
  fi
done
save_kunit
for ((i = ${#loaded[@]} - 1; i >= 0; i--)); do
  rmmod "${loaded[i]}" || { echo "rmmod ${loaded[i]} failed" >&2; status=1; }
done
exit $status
