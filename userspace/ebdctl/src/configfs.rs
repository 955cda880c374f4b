//! EBD disks as configfs directories: `/sys/kernel/config/ebd/NAME`.

use serde::Serialize;
use std::{
    collections::BTreeMap,
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
};

/// Where the ebd module's configfs subsystem lives.
pub const DEFAULT_ROOT: &str = "/sys/kernel/config/ebd";

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The subsystem directory is missing.
    #[error("{0} does not exist: is the ebd module loaded and configfs mounted?")]
    NoSubsystem(PathBuf),
    /// No disk has that name.
    #[error("no EBD disk named {0:?}")]
    NoDisk(String),
    /// A disk with that name exists already.
    #[error("an EBD disk named {0:?} exists already")]
    Exists(String),
    /// The server answered the disk's Info request with `Denied`: its
    /// `--allow` rules for the export do not list this client's address.
    #[error("the server refused this client: not allowed to use export {export} (is {netdev}'s address in the server's --allow rules?); writing {path}: {source}")]
    Denied {
        /// The export asked for.
        export: u16,
        /// The net device whose address the server saw.
        netdev: String,
        /// The `power` attribute.
        path: PathBuf,
        /// The kernel's error (EACCES).
        source: io::Error,
    },
    /// The server answered the disk's Info request with `NoSuchExport`.
    #[error("the server has no export {export}; writing {path}: {source}")]
    NoExport {
        /// The export asked for.
        export: u16,
        /// The `power` attribute.
        path: PathBuf,
        /// The kernel's error (ENXIO).
        source: io::Error,
    },
    /// Reading or writing an attribute failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// The attribute or directory.
        path: PathBuf,
        /// The cause (the kernel's error for a refused setting).
        source: io::Error,
    },
}

/// Settings of a disk to attach (also `ebdctl attach`'s options).
#[derive(clap::Args, Clone, Debug, Default, PartialEq, Eq)]
pub struct AttachSpec {
    /// Net device to use.
    #[arg(long)]
    pub netdev: String,
    /// Server MAC address (aa:bb:cc:dd:ee:ff); omitted, the first server
    /// to answer a broadcast is used.
    #[arg(long)]
    pub server: Option<String>,
    /// Export number on the server.
    #[arg(long, default_value_t = 0)]
    pub export: u16,
    /// Largest frame in bytes (default: the device MTU).
    #[arg(long)]
    pub frame_size: Option<u32>,
    /// Requests in flight, per queue.
    #[arg(long)]
    pub queue_depth: Option<u32>,
    /// Make the disk read-only.
    #[arg(long)]
    pub read_only: bool,
    /// First response timeout in milliseconds (doubled per retry).
    #[arg(long)]
    pub timeout_ms: Option<u32>,
    /// Retransmissions before a request fails.
    #[arg(long)]
    pub retries: Option<u32>,
    /// Response frames outstanding at once, per queue (default: four per
    /// queue slot, at least 1024).
    #[arg(long)]
    pub window: Option<u32>,
    /// Hardware queues, one per CPU up to this many (default: one per
    /// CPU).
    #[arg(long)]
    pub queues: Option<u32>,
}

/// One disk as `list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DiskInfo {
    /// configfs directory name.
    pub name: String,
    /// Whether `/dev/ebdN` exists.
    pub powered: bool,
    /// Block device name, when powered.
    pub disk: Option<String>,
    /// Size in bytes, when powered.
    pub size: Option<u64>,
    /// Logical block size, when powered.
    pub block_size: Option<u32>,
    /// Net device.
    pub netdev: String,
    /// Server address or `discover`.
    pub server: String,
    /// Export number.
    pub export: u16,
}

/// The configfs subsystem.
pub struct Subsystem {
    root: PathBuf,
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io { op, path: path.to_path_buf(), source }
}

impl Subsystem {
    /// The subsystem at `root`, which must exist.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, Error> {
        let root = root.into();
        if !root.is_dir() {
            return Err(Error::NoSubsystem(root));
        }
        Ok(Subsystem { root })
    }

    fn dir(&self, name: &str) -> Result<PathBuf, Error> {
        let d = self.root.join(name);
        if name.is_empty() || name.contains('/') || !d.is_dir() {
            return Err(Error::NoDisk(name.to_string()));
        }
        Ok(d)
    }

    fn read(&self, dir: &Path, attr: &str) -> Result<String, Error> {
        let p = dir.join(attr);
        Ok(fs::read_to_string(&p).map_err(io_err("reading", &p))?.trim().to_string())
    }

    fn write(&self, dir: &Path, attr: &str, value: &str) -> Result<(), Error> {
        let p = dir.join(attr);
        fs::write(&p, value).map_err(io_err("writing", &p))
    }

    /// Makes disk `name`, configures it and powers it on; on failure the
    /// directory is removed again.
    pub fn attach(&self, name: &str, spec: &AttachSpec) -> Result<DiskInfo, Error> {
        let d = self.root.join(name);
        if d.exists() {
            return Err(Error::Exists(name.to_string()));
        }
        fs::create_dir(&d).map_err(io_err("creating", &d))?;
        let configure = || -> Result<(), Error> {
            self.write(&d, "netdev", &spec.netdev)?;
            self.write(&d, "server", spec.server.as_deref().unwrap_or("discover"))?;
            self.write(&d, "export", &spec.export.to_string())?;
            let numbers = [
                ("frame_size", spec.frame_size),
                ("queue_depth", spec.queue_depth),
                ("timeout_ms", spec.timeout_ms),
                ("retries", spec.retries),
                ("window", spec.window),
                ("queues", spec.queues),
            ];
            for (attr, v) in numbers {
                if let Some(v) = v {
                    self.write(&d, attr, &v.to_string())?;
                }
            }
            self.write(&d, "read_only", if spec.read_only { "1" } else { "0" })?;
            self.power_on(&d, spec)
        };
        if let Err(e) = configure() {
            let _ = fs::remove_dir(&d);
            return Err(e);
        }
        self.info(name)
    }

    /// Writes `power`: the kernel asks the server for the export's Info
    /// and fails the write with the server's refusal, if any. Opening the
    /// attribute is a separate step so that a permission error of the
    /// attribute itself is not mistaken for the server's refusal.
    fn power_on(&self, dir: &Path, spec: &AttachSpec) -> Result<(), Error> {
        let p = dir.join("power");
        let mut f = fs::OpenOptions::new().write(true).create(true).truncate(true).open(&p).map_err(io_err("opening", &p))?;
        f.write_all(b"1").map_err(|e| power_error(spec, p, e))
    }

    /// Powers disk `name` off and removes it.
    pub fn detach(&self, name: &str) -> Result<(), Error> {
        let d = self.dir(name)?;
        self.write(&d, "power", "0")?;
        fs::remove_dir(&d).map_err(io_err("removing", &d))
    }

    /// Every disk, by name.
    pub fn list(&self) -> Result<Vec<DiskInfo>, Error> {
        let mut names: Vec<String> = fs::read_dir(&self.root)
            .map_err(io_err("listing", &self.root))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        names.iter().map(|n| self.info(n)).collect()
    }

    /// One disk.
    pub fn info(&self, name: &str) -> Result<DiskInfo, Error> {
        let d = self.dir(name)?;
        let disk_line = self.read(&d, "disk")?;
        let mut fields = disk_line.split_whitespace();
        let disk = fields.next().map(str::to_string);
        let size = fields.next().and_then(|s| s.parse().ok());
        let block_size = fields.next().and_then(|s| s.parse().ok());
        Ok(DiskInfo {
            name: name.to_string(),
            powered: self.read(&d, "power")? == "1",
            disk,
            size,
            block_size,
            netdev: self.read(&d, "netdev")?,
            server: self.read(&d, "server")?,
            export: self.read(&d, "export")?.parse().unwrap_or(0),
        })
    }

    /// The counters of disk `name` (`name value` lines of its `stats`).
    pub fn stats(&self, name: &str) -> Result<BTreeMap<String, u64>, Error> {
        let d = self.dir(name)?;
        Ok(parse_stats(&self.read(&d, "stats")?))
    }

    /// Each queue's counters of disk `name`, in queue order (its
    /// `queue_stats`).
    pub fn queue_stats(&self, name: &str) -> Result<Vec<BTreeMap<String, u64>>, Error> {
        let d = self.dir(name)?;
        Ok(parse_queue_stats(&self.read(&d, "queue_stats")?))
    }
}

/// Parses `queue N name=value ...` lines into one map per queue, in queue
/// order; lines and pairs that do not fit are skipped.
pub fn parse_queue_stats(text: &str) -> Vec<BTreeMap<String, u64>> {
    let mut queues: Vec<(u32, BTreeMap<String, u64>)> = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("queue ")?;
            let (index, pairs) = rest.split_once(' ')?;
            let counters = pairs
                .split_whitespace()
                .filter_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    Some((k.to_string(), v.parse().ok()?))
                })
                .collect();
            Some((index.parse().ok()?, counters))
        })
        .collect();
    queues.sort_by_key(|(i, _)| *i);
    queues.into_iter().map(|(_, c)| c).collect()
}

/// What the kernel's refusal of a power-on means: the ebd module reports
/// the server's answer to its Info request as the write's error.
pub fn power_error(spec: &AttachSpec, path: PathBuf, source: io::Error) -> Error {
    match source.raw_os_error() {
        Some(libc::EACCES) => Error::Denied { export: spec.export, netdev: spec.netdev.clone(), path, source },
        Some(libc::ENXIO) => Error::NoExport { export: spec.export, path, source },
        _ => Error::Io { op: "writing", path, source },
    }
}

/// Parses `name value` lines; lines that do not fit are skipped.
pub fn parse_stats(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory tree shaped like the configfs subsystem with one disk.
    fn fake() -> (tempfile::TempDir, Subsystem) {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("disk0");
        fs::create_dir(&d).unwrap();
        for (a, v) in [
            ("power", "1\n"),
            ("disk", "ebd0 1048576 512\n"),
            ("netdev", "pnk0\n"),
            ("server", "02:00:00:00:00:02\n"),
            ("export", "3\n"),
            ("stats", "tx_frames 10\nrx_frames 12\nbogus line here\n"),
        ] {
            fs::write(d.join(a), v).unwrap();
        }
        let s = Subsystem::open(t.path()).unwrap();
        (t, s)
    }

    #[test]
    fn list_reads_every_disk() {
        let (_t, s) = fake();
        let l = s.list().unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(
            l[0],
            DiskInfo {
                name: "disk0".into(),
                powered: true,
                disk: Some("ebd0".into()),
                size: Some(1 << 20),
                block_size: Some(512),
                netdev: "pnk0".into(),
                server: "02:00:00:00:00:02".into(),
                export: 3,
            }
        );
    }

    #[test]
    fn queue_stats_parse_in_queue_order() {
        let text = "queue 1 requests=5 completed=4 queue_len=1\nqueue 0 requests=7 bad=x completed=7\njunk\n";
        let q = parse_queue_stats(text);
        assert_eq!(q.len(), 2);
        assert_eq!(q[0].get("requests"), Some(&7));
        assert_eq!(q[0].get("bad"), None);
        assert_eq!(q[1].get("queue_len"), Some(&1));
    }

    #[test]
    fn stats_parse_and_skip_junk() {
        let (_t, s) = fake();
        let st = s.stats("disk0").unwrap();
        assert_eq!(st.get("tx_frames"), Some(&10));
        assert_eq!(st.get("rx_frames"), Some(&12));
        assert_eq!(st.len(), 2);
    }

    #[test]
    fn unknown_disk_and_missing_subsystem_are_clear_errors() {
        let (t, s) = fake();
        assert!(matches!(s.stats("nope"), Err(Error::NoDisk(_))));
        assert!(matches!(s.info("../x"), Err(Error::NoDisk(_))));
        assert!(matches!(Subsystem::open(t.path().join("missing")), Err(Error::NoSubsystem(_))));
        assert!(matches!(s.attach("disk0", &AttachSpec::default()), Err(Error::Exists(_))));
    }

    #[test]
    fn a_refused_power_on_says_why() {
        let spec = AttachSpec { netdev: "pnk0".into(), export: 3, ..Default::default() };
        let p = PathBuf::from("/sys/kernel/config/ebd/d/power");
        let denied = power_error(&spec, p.clone(), io::Error::from_raw_os_error(libc::EACCES));
        assert!(matches!(denied, Error::Denied { export: 3, .. }));
        let text = denied.to_string();
        assert!(text.starts_with("the server refused this client: not allowed to use export 3"), "{text}");
        assert!(text.contains("pnk0") && text.contains("Permission denied"), "{text}");
        let missing = power_error(&spec, p.clone(), io::Error::from_raw_os_error(libc::ENXIO)).to_string();
        // Scripts match the system's wording too.
        assert!(missing.contains("no export 3") && missing.contains("No such device or address"), "{missing}");
        let other = power_error(&spec, p, io::Error::from_raw_os_error(libc::ETIMEDOUT));
        assert!(matches!(other, Error::Io { op: "writing", .. }));
    }

    #[test]
    fn attach_writes_settings_then_power() {
        let t = tempfile::tempdir().unwrap();
        let s = Subsystem::open(t.path()).unwrap();
        // A plain directory accepts every write; the read-back of `disk`
        // fails because only the kernel creates it, which must surface.
        let spec = AttachSpec { netdev: "pnk0".into(), queue_depth: Some(32), ..Default::default() };
        let err = s.attach("d", &spec).unwrap_err();
        assert!(matches!(err, Error::Io { op: "reading", .. }));
        let d = t.path().join("d");
        assert_eq!(fs::read_to_string(d.join("netdev")).unwrap(), "pnk0");
        assert_eq!(fs::read_to_string(d.join("queue_depth")).unwrap(), "32");
        assert_eq!(fs::read_to_string(d.join("server")).unwrap(), "discover");
        assert_eq!(fs::read_to_string(d.join("power")).unwrap(), "1");
    }
}
