//! Attached devices as configfs directories: `/sys/kernel/config/fwd/DEV`.

use serde::Serialize;
use std::{
    collections::BTreeMap,
    fs, io,
    path::{Path, PathBuf},
};

/// Where the fwd module's configfs subsystem lives.
pub const DEFAULT_ROOT: &str = "/sys/kernel/config/fwd";

/// The forwarding paths a device can use (the `mode` attribute).
pub const MODES: [&str; 3] = ["conventional", "in-place", "header-copy"];

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The subsystem directory is missing.
    #[error("{0} does not exist: is the fwd module loaded and configfs mounted? (`ip netns exec` remounts /sys without configfs: use fwdctl --netns NAME instead)")]
    NoSubsystem(PathBuf),
    /// The router is not attached to that device.
    #[error("the router is not attached to {0:?}")]
    NotAttached(String),
    /// Attached already.
    #[error("the router is attached to {0:?} already")]
    Attached(String),
    /// Not a mode the module knows.
    #[error("unknown mode {0:?} (one of: {modes})", modes = MODES.join(", "))]
    UnknownMode(String),
    /// A counters line that is not `name value`.
    #[error("{path}: unreadable counter line {line:?}")]
    BadCounter {
        /// The counters attribute.
        path: PathBuf,
        /// The line.
        line: String,
    },
    /// Reading or writing an attribute failed.
    #[error("{op} {path}: {source}{hint}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// The attribute or directory.
        path: PathBuf,
        /// The cause (the kernel's error for a refused setting).
        source: io::Error,
        /// What the kernel's error usually means here.
        hint: &'static str,
    },
}

/// One attached device, as `show` and `list` report it.
#[derive(Debug, Serialize, PartialEq)]
pub struct Port {
    /// The net device.
    pub device: String,
    /// Its forwarding path.
    pub mode: String,
    /// False once the device went away (the directory stays until detached).
    pub attached: bool,
    /// Every counter by name.
    pub counters: BTreeMap<String, u64>,
    /// Per device path that forwarded anything: bus bytes per forwarded
    /// packet (`bus_bytes.MODE / forwarded.MODE`).
    pub bus_bytes_per_packet: BTreeMap<String, f64>,
}

/// Bus bytes per forwarded packet of each mode that has both counters and
/// forwarded something.
fn bus_bytes_per_packet(counters: &BTreeMap<String, u64>) -> BTreeMap<String, f64> {
    MODES
        .iter()
        .filter_map(|m| {
            let bus = *counters.get(&format!("bus_bytes.{m}"))?;
            let packets = *counters.get(&format!("forwarded.{m}"))?;
            (packets > 0).then(|| (m.to_string(), bus as f64 / packets as f64))
        })
        .collect()
}

/// The fwd configfs subsystem.
pub struct Subsystem {
    root: PathBuf,
}

fn io_err(op: &'static str, path: &Path, hint: &'static str) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { op, path, source, hint }
}

/// What the module's errors mean when attaching.
fn attach_hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(19) => " (no such net device in this namespace)",
        Some(16) => " (the device has a receive handler already: a bridge or bond port?)",
        _ => "",
    }
}

impl Subsystem {
    /// The subsystem at `root`, which must exist.
    pub fn open(root: &Path) -> Result<Self, Error> {
        if !root.is_dir() {
            return Err(Error::NoSubsystem(root.to_path_buf()));
        }
        Ok(Subsystem { root: root.to_path_buf() })
    }

    fn dir(&self, device: &str) -> Result<PathBuf, Error> {
        let d = self.root.join(device);
        if device.is_empty() || device.contains('/') || !d.is_dir() {
            return Err(Error::NotAttached(device.into()));
        }
        Ok(d)
    }

    /// Attaches the router to `device`, with `mode` if given.
    pub fn attach(&self, device: &str, mode: Option<&str>) -> Result<Port, Error> {
        if let Some(m) = mode {
            check_mode(m)?;
        }
        let d = self.root.join(device);
        if d.exists() {
            return Err(Error::Attached(device.into()));
        }
        fs::create_dir(&d).map_err(|e| {
            let hint = attach_hint(&e);
            io_err("attaching (mkdir)", &d, hint)(e)
        })?;
        if let Some(m) = mode {
            if let Err(e) = self.set_mode(device, m) {
                // Not left half-attached.
                let _ = fs::remove_dir(&d);
                return Err(e);
            }
        }
        self.show(device)
    }

    /// Detaches the router from `device`.
    pub fn detach(&self, device: &str) -> Result<(), Error> {
        let d = self.dir(device)?;
        fs::remove_dir(&d).map_err(io_err("detaching (rmdir)", &d, ""))
    }

    /// Sets `device`'s forwarding path.
    pub fn set_mode(&self, device: &str, mode: &str) -> Result<(), Error> {
        check_mode(mode)?;
        let p = self.dir(device)?.join("mode");
        fs::write(&p, format!("{mode}\n")).map_err(|e| {
            let hint = match e.raw_os_error() {
                Some(95) => " (this path is not available on this device yet)",
                _ => "",
            };
            io_err("setting mode", &p, hint)(e)
        })
    }

    /// Sets `device`'s counters to zero.
    pub fn reset(&self, device: &str) -> Result<(), Error> {
        let p = self.dir(device)?.join("counters");
        fs::write(&p, "0\n").map_err(io_err("resetting", &p, ""))
    }

    /// One attached device.
    pub fn show(&self, device: &str) -> Result<Port, Error> {
        let d = self.dir(device)?;
        let read = |name: &str| {
            let p = d.join(name);
            fs::read_to_string(&p).map_err(io_err("reading", &p, ""))
        };
        let counters_path = d.join("counters");
        let mut counters = BTreeMap::new();
        for line in read("counters")?.lines().filter(|l| !l.trim().is_empty()) {
            let parsed = line.split_once(' ').and_then(|(k, v)| Some((k.to_string(), v.trim().parse().ok()?)));
            let (k, v) =
                parsed.ok_or_else(|| Error::BadCounter { path: counters_path.clone(), line: line.to_string() })?;
            counters.insert(k, v);
        }
        Ok(Port {
            device: device.to_string(),
            mode: read("mode")?.trim().to_string(),
            attached: read("attached")?.trim() == "1",
            bus_bytes_per_packet: bus_bytes_per_packet(&counters),
            counters,
        })
    }

    /// Every attached device, by name.
    pub fn list(&self) -> Result<Vec<Port>, Error> {
        let mut names = Vec::new();
        for e in fs::read_dir(&self.root).map_err(io_err("listing", &self.root, ""))? {
            let e = e.map_err(io_err("listing", &self.root, ""))?;
            if e.path().is_dir() {
                names.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        names.iter().map(|n| self.show(n)).collect()
    }
}

fn check_mode(mode: &str) -> Result<(), Error> {
    if MODES.contains(&mode) {
        Ok(())
    } else {
        Err(Error::UnknownMode(mode.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for configfs: a directory per device with the module's
    /// attributes (the real one makes them on mkdir).
    fn fake(devices: &[(&str, &str)]) -> tempfile::TempDir {
        let t = tempfile::tempdir().expect("tempdir");
        for (dev, counters) in devices {
            let d = t.path().join(dev);
            fs::create_dir(&d).expect("mkdir");
            fs::write(d.join("mode"), "conventional\n").expect("mode");
            fs::write(d.join("attached"), "1\n").expect("attached");
            fs::write(d.join("counters"), counters).expect("counters");
        }
        t
    }

    #[test]
    fn show_reads_mode_and_every_counter() {
        let t = fake(&[("ra", "forwarded.conventional 12\nto_stack.local 3\n")]);
        let s = Subsystem::open(t.path()).expect("open");
        let p = s.show("ra").expect("show");
        assert_eq!(p.mode, "conventional");
        assert!(p.attached);
        assert_eq!(p.counters.get("forwarded.conventional"), Some(&12));
        assert_eq!(p.counters.get("to_stack.local"), Some(&3));
        assert_eq!(p.counters.len(), 2);
        assert!(p.bus_bytes_per_packet.is_empty());
    }

    #[test]
    fn bus_bytes_per_packet_for_the_device_paths_that_forwarded() {
        let t = fake(&[(
            "ra",
            "forwarded.header-copy 4\nbus_bytes.header-copy 1000\nforwarded.in-place 0\nbus_bytes.in-place 0\n",
        )]);
        let p = Subsystem::open(t.path()).expect("open").show("ra").expect("show");
        assert_eq!(p.bus_bytes_per_packet.get("header-copy"), Some(&250.0));
        assert_eq!(p.bus_bytes_per_packet.len(), 1);
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        let t = fake(&[("ra", "forwarded.conventional twelve\n")]);
        let s = Subsystem::open(t.path()).expect("open");
        assert!(matches!(s.show("ra"), Err(Error::BadCounter { .. })));
        assert!(matches!(s.show("nope"), Err(Error::NotAttached(_))));
        assert!(matches!(s.show("../etc"), Err(Error::NotAttached(_))));
        assert!(matches!(s.set_mode("ra", "turbo"), Err(Error::UnknownMode(_))));
        assert!(matches!(s.attach("ra", None), Err(Error::Attached(_))));
        assert!(matches!(Subsystem::open(&t.path().join("missing")), Err(Error::NoSubsystem(_))));
    }

    #[test]
    fn list_is_sorted_and_detach_removes() {
        let t = fake(&[("rb", ""), ("ra", "")]);
        let s = Subsystem::open(t.path()).expect("open");
        let names: Vec<_> = s.list().expect("list").into_iter().map(|p| p.device).collect();
        assert_eq!(names, ["ra", "rb"]);
        // A plain directory stands in for configfs here: rmdir of a
        // non-empty one fails, and that failure is reported.
        assert!(matches!(s.detach("ra"), Err(Error::Io { .. })));
        fs::create_dir(t.path().join("empty")).expect("mkdir");
        s.detach("empty").expect("detach");
        assert!(!t.path().join("empty").exists());
    }

    #[test]
    fn set_mode_writes_the_attribute() {
        let t = fake(&[("ra", "")]);
        let s = Subsystem::open(t.path()).expect("open");
        s.set_mode("ra", "header-copy").expect("set");
        assert_eq!(fs::read_to_string(t.path().join("ra/mode")).expect("read"), "header-copy\n");
    }
}
