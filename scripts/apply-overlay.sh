#!/usr/bin/env bash
# Apply the project's rust/ overlay onto a kernel source tree.
#
#   apply-overlay.sh OVERLAY ORIG TREE
#
# OVERLAY mirrors the kernel's rust/ directory. A file FOO is copied to
# TREE/rust/FOO; a file FOO.append is appended to the pristine ORIG/rust/FOO;
# a file FOO.import names (one line, relative to the repository root) a source
# file of the repository that becomes TREE/rust/FOO, so one file can be shared
# verbatim by the kernel crate and user space (the storage wire protocol);
# OVERLAY/patches/*.patch (paths relative to the kernel tree, -p1) are applied
# in name order to the pristine files they touch, before any append. Patches
# are for the few changes that cannot be an addition (an existing vtable
# entry, a private field).
# Only files whose content changes are written, so make rebuilds just what the
# overlay touched. Files written by an earlier overlay and no longer in it are
# restored from ORIG (or removed if ORIG has none). The list of overlaid paths
# is kept in TREE/.polynic-overlay-manifest.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
overlay=$1 orig=$2 tree=$3
manifest="$tree/.polynic-overlay-manifest"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

[[ -d $overlay ]] || die "overlay directory $overlay missing"
for p in "$overlay"/patches/*.patch; do
  [[ -e $p ]] || continue
  while IFS= read -r target; do
    [[ -e $stage/$target ]] && continue
    mkdir -p "$stage/$(dirname "$target")"
    [[ -f $orig/$target ]] && cp "$orig/$target" "$stage/$target"
  done < <(sed -n 's|^+++ b/\([^[:space:]]*\).*|\1|p' "$p")
  patch -p1 -s -f --no-backup-if-mismatch -d "$stage" <"$p" >&2 \
    || die "overlay patch $(basename "$p") does not apply to the kernel source"
done
(cd "$overlay" && find . -type f ! -name '*.md' ! -name '.*' ! -path './patches/*' -printf '%P\n' | LC_ALL=C sort) |
while IFS= read -r rel; do
  if [[ $rel == *.import ]]; then
    target="rust/${rel%.import}"
    source_file="$POLYNIC_ROOT/$(head -n1 "$overlay/$rel")"
    [[ -f $source_file ]] || die "overlay $rel imports $source_file, which does not exist"
    mkdir -p "$stage/$(dirname "$target")"
    cp "$source_file" "$stage/$target"
  elif [[ $rel == *.append ]]; then
    target="rust/${rel%.append}"
    [[ -f $orig/$target ]] || die "overlay $rel appends to $target, which the kernel does not have"
    mkdir -p "$stage/$(dirname "$target")"
    [[ -f $stage/$target ]] || cp "$orig/$target" "$stage/$target"
    { printf '\n/* polynic overlay: %s */\n' "$rel"; cat "$overlay/$rel"; } >>"$stage/$target"
  else
    target="rust/$rel"
    mkdir -p "$stage/$(dirname "$target")"
    cp "$overlay/$rel" "$stage/$target"
  fi
done

new_manifest=$(cd "$stage" && find . -type f -printf '%P\n' | LC_ALL=C sort)
changed=0
# Restore what an earlier overlay wrote and this one no longer does.
while IFS= read -r old; do
  [[ -n $old ]] || continue
  grep -qxF "$old" <<<"$new_manifest" && continue
  if [[ -f $orig/$old ]]; then cp "$orig/$old" "$tree/$old"; else rm -f "$tree/$old"; fi
  changed=$((changed + 1))
done <"$manifest"
while IFS= read -r rel; do
  [[ -n $rel ]] || continue
  if ! cmp -s "$stage/$rel" "$tree/$rel"; then
    mkdir -p "$tree/$(dirname "$rel")"
    cp "$stage/$rel" "$tree/$rel"
    changed=$((changed + 1))
  fi
done <<<"$new_manifest"
printf '%s\n' "$new_manifest" | sed '/^$/d' >"$manifest"
log "overlay: $(grep -c . "$manifest" || true) file(s), $changed changed"
