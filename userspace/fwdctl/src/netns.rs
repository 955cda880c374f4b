//! Entering a network namespace by name (`/run/netns/NAME`, as `ip netns`
//! makes them) or by path, for this process only.

use anyhow::{Context, Result};
use std::{fs::File, os::fd::AsRawFd, path::PathBuf};

/// Where `ip netns add` binds named namespaces.
const NETNS_DIR: &str = "/run/netns";

/// The file that names namespace `ns`: a path as given, a bare name under
/// [`NETNS_DIR`].
pub fn path_of(ns: &str) -> PathBuf {
    if ns.contains('/') {
        PathBuf::from(ns)
    } else {
        PathBuf::from(NETNS_DIR).join(ns)
    }
}

/// Moves this process into network namespace `ns`; its mounts (and so
/// configfs) stay as they are.
pub fn enter(ns: &str) -> Result<()> {
    let path = path_of(ns);
    let f = File::open(&path).with_context(|| format!("network namespace {ns:?}: opening {}", path.display()))?;
    // SAFETY: `f` is an open file for the call's duration; setns only reads
    // the descriptor and changes this process's namespace.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("entering network namespace {ns:?} ({})", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        assert_eq!(path_of("fr"), PathBuf::from("/run/netns/fr"));
        assert_eq!(path_of("/proc/1/ns/net"), PathBuf::from("/proc/1/ns/net"));
    }

    #[test]
    fn a_missing_namespace_is_a_clear_error() {
        let e = enter("polynic-no-such-namespace").expect_err("no such namespace");
        assert!(format!("{e:#}").contains("polynic-no-such-namespace"), "{e:#}");
    }
}
