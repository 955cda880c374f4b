#!/usr/bin/env bash
# Fetch Debian's linux-source-7.3 package into the cache under a private apt
# state, so the machine's own apt sources and lists stay untouched. Prints the
# path of the cached .deb.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SUITES=(trixie-backports trixie forky sid)
dl="$POLYNIC_CACHE/downloads"
mkdir -p "$dl"

cached=$(ls -1 "$dl/${KERNEL_PACKAGE}_${KERNEL_SERIES}."*_all.deb 2>/dev/null | sort -V | tail -n1 || true)
if [[ -n $cached ]]; then
  echo "$cached"
  exit 0
fi

apt_root="$POLYNIC_CACHE/apt"
mkdir -p "$apt_root/lists/partial" "$apt_root/cache/archives/partial" "$apt_root/etc/preferences.d"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
: >"$apt_root/etc/sources.list"
for s in "${SUITES[@]}"; do
  echo "deb [signed-by=$keyring] http://deb.debian.org/debian $s main" >>"$apt_root/etc/sources.list"
done
apt_opts=(
  -o "Dir::State=$apt_root" -o "Dir::State::Lists=$apt_root/lists"
  -o "Dir::State::status=/var/lib/dpkg/status"
  -o "Dir::Etc::SourceList=$apt_root/etc/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::Etc::Preferences=/dev/null" -o "Dir::Etc::PreferencesParts=$apt_root/etc/preferences.d"
  -o "Dir::Cache=$apt_root/cache" -o "APT::Sandbox::User=root"
)
log "fetching package lists for: ${SUITES[*]} (private apt state in $apt_root)"
apt-get "${apt_opts[@]}" -qq update >/dev/null 2>"$apt_root/update.log" \
  || log "some suites could not be read (see $apt_root/update.log); trying what was fetched"

# Newest 7.3.x any suite carries.
version=$(apt-cache "${apt_opts[@]}" madison "$KERNEL_PACKAGE" 2>/dev/null \
  | awk -F'|' -v s="$KERNEL_SERIES" '{gsub(/ /,"",$2); if (index($2, s".")==1) print $2}' | sort -V | tail -n1)
[[ -n $version ]] || die "no $KERNEL_PACKAGE ${KERNEL_SERIES}.x found in suites: ${SUITES[*]}; place ${KERNEL_PACKAGE}_${KERNEL_SERIES}.*_all.deb in $dl by hand"
log "downloading $KERNEL_PACKAGE=$version"
(cd "$dl" && apt-get "${apt_opts[@]}" -qq download "$KERNEL_PACKAGE=$version" >/dev/null) \
  || die "apt-get download $KERNEL_PACKAGE=$version failed"
ls -1 "$dl/${KERNEL_PACKAGE}_"*"_all.deb" | sort -V | tail -n1
