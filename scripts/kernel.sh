#!/usr/bin/env bash
# Build (or reuse) the polynic test kernel in the cache and print its build
# directory. POLYNIC_KERNEL_FLAVOUR=bench builds the benchmark kernel instead
# (same source and overlay, scripts/polynic-bench.config turning the
# debugging off) in a build directory of its own. The cache is keyed by the inputs: the Debian source package, the
# config fragment and the rust/ overlay. A changed overlay rebuilds
# incrementally; unchanged inputs skip make entirely.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# One build at a time per cache: several checkouts (or CI beside a session)
# share it.
mkdir -p "$POLYNIC_CACHE"
exec 9>"$POLYNIC_CACHE/kernel.lock"
flock 9

deb=$("$POLYNIC_ROOT/scripts/fetch-kernel.sh")
version=$(dpkg-deb -f "$deb" Version)
top="$POLYNIC_CACHE/kernel/$version"
orig="$top/orig"     # pristine source, never modified
src="$top/src"       # pristine source + rust/ overlay
fragment="$POLYNIC_ROOT/scripts/polynic.config"
mkdir -p "$top"
case ${POLYNIC_KERNEL_FLAVOUR:-test} in
  test) build="$top/build" ;;  # O= output directory
  bench)
    build="$top/build-bench"
    # The test fragment minus every symbol the bench fragment sets, then the
    # bench fragment: each symbol appears once, so each line can be verified.
    override="$POLYNIC_ROOT/scripts/polynic-bench.config"
    merged="$top/polynic-bench-merged.config"
    syms=$(grep -oE 'CONFIG_[A-Z0-9_]+' "$override" | sort -u)
    { grep -vwF -f <(echo "$syms") "$POLYNIC_ROOT/scripts/polynic.config"; grep -E '^(CONFIG_|# CONFIG_)' "$override"; } >"$merged.new"
    cmp -s "$merged.new" "$merged" 2>/dev/null && rm "$merged.new" || mv "$merged.new" "$merged"
    fragment="$merged"
    ;;
  *) die "unknown POLYNIC_KERNEL_FLAVOUR ${POLYNIC_KERNEL_FLAVOUR} (test or bench)" ;;
esac

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
  log "configuring $build: vng --kconfig + $(basename "$fragment")"
  # vng's own defaults come after its --config fragments, so merge ours on top
  # of its result to make the fragment win.
  (cd "$src" && vng --kconfig O="$build" "${KMAKE_ARGS[@]}" >"$build.config.log" 2>&1 \
    && ./scripts/kconfig/merge_config.sh -m -O "$build" "$build/.config" "$fragment" >>"$build.config.log" 2>&1 \
    && "${kmake[@]}" olddefconfig >>"$build.config.log" 2>&1) \
    || die "kernel configuration failed; see $build.config.log"
  "${kmake[@]}" -s rustavailable >>"$build.config.log" 2>&1 \
    || die "Rust toolchain not usable by the kernel (see $build.config.log); run scripts/setup.sh"
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

log "building kernel $version in $build (a full build takes ~30 min on 2 cores; log: $build.log)"
start=$SECONDS
# The key says the build matches it only once a build has finished: a build
# that fails or is interrupted halfway leaves none.
rm -f "$build/.polynic-key"
"${kmake[@]}" -j"$(nproc)" >"$build.log" 2>&1 \
  || { tail -n 40 "$build.log" >&2; die "kernel build failed; full log: $build.log"; }
log "kernel built in $((SECONDS - start)) s"
echo "$key" >"$build/.polynic-key"
echo "$build"
