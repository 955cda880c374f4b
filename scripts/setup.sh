#!/usr/bin/env bash
# Install everything polynic needs on a fresh machine. Idempotent: a second
# run checks and installs nothing. Each failing step names what to install.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEB_PACKAGES=(
  # kernel build
  clang-19 lld-19 llvm-19 libclang-19-dev rustc-web rust-web-src
  flex bison bc libelf-dev libssl-dev cpio kmod make gcc xz-utils python3 python3-venv patch
  # test VM and guest tools
  qemu-system-x86 busybox-static iproute2 e2fsprogs fio util-linux procps socat iputils-ping ethtool
  # building virtiofsd (below)
  libseccomp-dev libcap-ng-dev pkg-config
  # benchmark anchors and plotting
  vblade aoetools nbd-server nbd-client nvme-cli iperf3 sockperf gnuplot-nox
)

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  [[ $(id -u) == 0 ]] || die "missing Debian packages (${missing[*]}); run this script as root or: apt-get install ${missing[*]}"
  log "installing Debian packages: ${missing[*]}"
  stamp="$POLYNIC_CACHE/apt-updated"
  mkdir -p "$POLYNIC_CACHE"
  if [[ ! -e $stamp ]] || [[ -n $(find "$stamp" -mmin +720) ]]; then
    apt-get update -qq >/dev/null || die "apt-get update failed; check the machine's Debian sources"
    touch "$stamp"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install failed; install by hand: ${missing[*]}"
fi

# nbd-server's package ships an init script that may start a server we do
# not use; the benchmark runs its own inside the VM.
[[ -x /usr/bin/rustc ]] || die "/usr/bin/rustc missing; apt-get install rustc-web rust-web-src"

# (Outputs are captured before matching: with pipefail, `grep -q` closing
# the pipe early would make the check fail spuriously.)
if [[ $("$HOME/.cargo/bin/bindgen" --version 2>/dev/null) != *" $BINDGEN_VERSION"* ]]; then
  log "installing bindgen-cli $BINDGEN_VERSION"
  cargo install --locked --quiet bindgen-cli --version "$BINDGEN_VERSION" \
    || die "cargo install bindgen-cli failed; run: cargo install --locked bindgen-cli --version $BINDGEN_VERSION"
fi

# virtme-ng goes into a virtual environment in the cache, so it does not
# depend on which python3 or pip the calling environment finds first.
if [[ ! -x $POLYNIC_VENV/bin/python ]]; then
  log "creating the Python environment for virtme-ng in $POLYNIC_VENV"
  python3 -m venv "$POLYNIC_VENV" \
    || die "python3 -m venv failed; install python3-venv (apt-get install python3-venv)"
fi
if ! grep -qx "Version: $VIRTME_NG_VERSION" <<<"$("$POLYNIC_VENV/bin/python" -m pip show virtme-ng 2>/dev/null)"; then
  log "installing virtme-ng $VIRTME_NG_VERSION"
  "$POLYNIC_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "virtme-ng==$VIRTME_NG_VERSION" \
    || die "pip install virtme-ng failed; run: $POLYNIC_VENV/bin/python -m pip install virtme-ng==$VIRTME_NG_VERSION"
fi
[[ $(command -v vng) == "$POLYNIC_VENV/bin/vng" ]] || die "vng is not the one in $POLYNIC_VENV; check PATH"

# virtiofsd: with it on PATH, virtme-ng shares the host's root file system
# with the guest over virtio-fs instead of 9p. Every exec in the guest reads
# binaries and libraries through it, and measured 2-4x faster
# (/bin/true 0.49 s against 0.92 s, ip 1.2 s against 2.5 s, ebdctl 0.8 s
# against 3.2 s in the TCG guest). Debian 12 does not package it.
if [[ $("$POLYNIC_VENV/bin/virtiofsd" --version 2>/dev/null) != *" $VIRTIOFSD_VERSION"* ]]; then
  log "building virtiofsd $VIRTIOFSD_VERSION for the test VM (a few minutes)"
  cargo install --locked --quiet virtiofsd --version "$VIRTIOFSD_VERSION" --root "$POLYNIC_VENV" \
    || die "cargo install virtiofsd failed; run: cargo install --locked virtiofsd --version $VIRTIOFSD_VERSION --root $POLYNIC_VENV"
fi

if ! cargo clippy --version >/dev/null 2>&1; then
  log "cargo clippy missing; the host checks use it"
  rustup component add clippy >/dev/null 2>&1 || die "clippy missing; run: rustup component add clippy"
fi
log "set-up complete"
