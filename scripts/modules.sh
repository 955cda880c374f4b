#!/usr/bin/env bash
# Build the out-of-tree modules under modules/ (or, with an argument, another
# Kbuild tree such as the harness fixtures) against the cached test kernel.
#
#   modules.sh KDIR [SUBTREE]
#
# Objects go to out/build/<subtree> (out/build-bench/<subtree> for the bench
# kernel), so the checkout stays clean and the two kernels' modules never mix.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kdir=$1
tree=${2:-.}
src=$(cd "$POLYNIC_ROOT/$tree" && pwd)
out=$(modules_out "$kdir")
obj="$out/${tree#./}"
[[ $tree == . ]] && obj="$out/modules"
mkdir -p "$obj"
make -C "$kdir" M="$src" MO="$obj" "${KMAKE_ARGS[@]}" -j"$(nproc)" modules >"$obj/build.log" 2>&1 \
  || { cat "$obj/build.log" >&2; die "module build failed in $tree"; }
find "$obj" -name '*.ko' | sort
