#!/usr/bin/env bash
# Build (or reuse) the polynic test kernel in the cache and print its build
# directory. The cache is keyed by the inputs: the Debian source package, the
# config fragment and the rust/ overlay. A changed overlay rebuilds
# incrementally; unchanged inputs skip make entirely.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

deb=$("$POLYNIC_ROOT/scripts/fetch-kernel.sh")
version=$(dpkg-deb -f "$deb" Version)
top="$POLYNIC_CACHE/kernel/$version"
orig="$top/orig"     # pristine source, never modified
src="$top/src"       # pristine source + rust/ overlay
build="$top/build"   # O= output directory
fragment="$POLYNIC_ROOT/scripts/polynic.config"
mkdir -p "$top"

if [[ ! -e $orig/.polynic-extracted ]]; then
  log "extracting $KERNEL_PACKAGE $version (about a minute)"
  rm -rf "$orig" "$top/deb"
  dpkg-deb -x "$deb" "$top/deb"
  mkdir -p "$orig"
  tar -xJf "$top/deb/usr/src/$KERNEL_PACKAGE.tar.xz" -C "$orig" --strip-components=1
  rm -rf "$top/deb"
  touch "$orig/.polynic-extracted"
fi
if [[ ! -e $src/.polynic-copied ]]; then
  rm -rf "$src"
  cp -a "$orig" "$src"
  : >"$src/.polynic-overlay-manifest"
  touch "$src/.polynic-copied"
fi

"$POLYNIC_ROOT/scripts/apply-overlay.sh" "$POLYNIC_ROOT/rust" "$orig" "$src"

key=$( { echo "$version"; sha256sum "$fragment"; cat "$src/.polynic-overlay-manifest"; \
  (cd "$src" && xargs -r sha256sum <.polynic-overlay-manifest); } | sha256sum | cut -c1-16)
if [[ -e $build/arch/x86/boot/bzImage && "$(cat "$build/.polynic-key" 2>/dev/null)" == "$key" ]]; then
  echo "$build"
  exit 0
fi

mkdir -p "$build"
kmake=(make -C "$src" O="$build" "${KMAKE_ARGS[@]}")
if [[ "$(cat "$build/.polynic-fragment" 2>/dev/null)" != "$(sha256sum <"$fragment")" ]]; then
  log "configuring: vng --kconfig + $(basename "$fragment")"
  # vng's own defaults come after its --config fragments, so merge ours on top
  # of its result to make the fragment win.
  (cd "$src" && vng --kconfig O="$build" "${KMAKE_ARGS[@]}" >"$top/config.log" 2>&1 \
    && ./scripts/kconfig/merge_config.sh -m -O "$build" "$build/.config" "$fragment" >>"$top/config.log" 2>&1 \
    && "${kmake[@]}" olddefconfig >>"$top/config.log" 2>&1) \
    || die "kernel configuration failed; see $top/config.log"
  "${kmake[@]}" -s rustavailable >>"$top/config.log" 2>&1 \
    || die "Rust toolchain not usable by the kernel (see $top/config.log); run scripts/setup.sh"
  # Every line of the fragment must have survived olddefconfig, or a
  # dependency is missing and the tests would silently lose coverage.
  lost=()
  while IFS= read -r line; do
    [[ $line =~ ^(CONFIG_[A-Z0-9_]+)=(.*)$ ]] || [[ $line =~ ^#\ (CONFIG_[A-Z0-9_]+)\ is\ not\ set$ ]] || continue
    sym=${BASH_REMATCH[1]}; want=${BASH_REMATCH[2]:-n}
    have=$(grep -E "^$sym=" "$build/.config" | cut -d= -f2- || true)
    [[ -z $have ]] && have=n
    [[ $have == "$want" ]] || lost+=("$sym=$want (got $have)")
  done <"$fragment"
  ((${#lost[@]} == 0)) || die "config fragment not honoured: ${lost[*]}"
  sha256sum <"$fragment" >"$build/.polynic-fragment"
fi

log "building kernel $version in $build (a full build takes ~11 min on 2 cores; log: $top/build.log)"
start=$SECONDS
"${kmake[@]}" -j"$(nproc)" >"$top/build.log" 2>&1 \
  || { tail -n 40 "$top/build.log" >&2; die "kernel build failed; full log: $top/build.log"; }
log "kernel built in $((SECONDS - start)) s"
echo "$key" >"$build/.polynic-key"
echo "$build"
