# shellcheck shell=bash
# Shared settings for every polynic script. Source it; do not run it.
set -euo pipefail

POLYNIC_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
POLYNIC_CACHE="${POLYNIC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/polynic}"

# Toolchain pinned by the design brief: Debian's rustc-web (it ships the
# library sources the kernel build needs) and LLVM 19. It is passed to the
# kernel's make only (KMAKE_ARGS): exporting RUSTC would also reach cargo, and
# the host crates would then be built by two compilers (cargo test with
# rustc-web, clippy with the rustup toolchain's driver), which cargo refuses.
POLYNIC_VENV="$POLYNIC_CACHE/venv"   # virtme-ng lives here (scripts/setup.sh)
export PATH="$POLYNIC_VENV/bin:$HOME/.cargo/bin:$PATH"
BINDGEN_VERSION=0.73.2
VIRTME_NG_VERSION=1.42
VIRTIOFSD_VERSION=1.14.0
KERNEL_SERIES=7.3
KERNEL_PACKAGE="linux-source-${KERNEL_SERIES}"

# Kernel make arguments shared by the kernel build and the out-of-tree modules.
KMAKE_ARGS=(LLVM=-19 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc BINDGEN="$HOME/.cargo/bin/bindgen")

# The user-space tools (ebd-server, ebdctl), which the guest runs from the
# checkout.
build_userspace() {
  (cd "$POLYNIC_ROOT/userspace" && cargo build --release --workspace --quiet) || die "building userspace/ failed"
}

# Where modules built against KDIR go: out/build, or out/build-bench for the
# bench kernel, so that the two kernels' modules never mix.
modules_out() {
  if [[ $(basename "$1") == build-bench ]]; then echo "$POLYNIC_ROOT/out/build-bench"; else echo "$POLYNIC_ROOT/out/build"; fi
}

# prepare_guest [FLAVOUR]: set-up, the kernel of FLAVOUR (test or bench),
# the polynic modules and the user-space tools; sets KDIR.
prepare_guest() {
  "$POLYNIC_ROOT/scripts/setup.sh"
  KDIR=$(POLYNIC_KERNEL_FLAVOUR=${1:-test} "$POLYNIC_ROOT/scripts/kernel.sh")
  "$POLYNIC_ROOT/scripts/modules.sh" "$KDIR" >/dev/null
  build_userspace
}

# run_guest OUT TIMEOUT COMMAND...: boots KDIR and runs COMMAND (from the
# checkout) with POLYNIC_MODULES and POLYNIC_BIN pointing at what
# prepare_guest built.
run_guest() {
  local out=$1 timeout=$2
  shift 2
  python3 "$POLYNIC_ROOT/scripts/vm.py" --kdir "$KDIR" --out "$out" --timeout "$timeout" -- \
    env POLYNIC_MODULES="$(modules_out "$KDIR")/modules" POLYNIC_BIN="$POLYNIC_ROOT/userspace/target/release" "$@"
}

log() { printf '[polynic] %s\n' "$*" >&2; }
die() { printf '[polynic] error: %s\n' "$*" >&2; exit 1; }
