// SPDX-License-Identifier: GPL-2.0

//! The configfs interface: `mkdir /sys/kernel/config/ebd/NAME` makes a disk
//! description, its attributes configure it, `power` adds or removes
//! `/dev/ebdN`, and `disk` and `stats` report on it.

use crate::{
    blk::Completer,
    device::{EbdDisk, Settings},
};
use kernel::{
    configfs::{self, attribute_text, show_attribute, AttributeOperations},
    configfs_attrs,
    fmt::{self, Write as _},
    net::{
        device::IFNAMSIZ,
        ethernet::MacAddr,
        storage::{Personality, MAX_QUEUES},
    },
    new_mutex,
    page::PAGE_SIZE,
    prelude::*,
    str::{kstrtobool_bytes, CString, Formatter},
    sync::Mutex,
};

pub(crate) fn subsystem() -> impl PinInit<configfs::Subsystem<Root>, Error> {
    let item_type = configfs_attrs! {
        container: configfs::Subsystem<Root>,
        data: Root,
        child: DiskConfig,
        attributes: [
            features: 0,
        ],
    };
    configfs::Subsystem::new(c"ebd", item_type, try_pin_init!(Root {}))
}

/// The `ebd` directory itself.
#[pin_data]
pub(crate) struct Root {}

#[vtable]
impl AttributeOperations<0> for Root {
    type Data = Root;

    /// The attributes a disk directory offers.
    fn show(_this: &Root, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        show_attribute(page, |w| {
            w.write_str("power,netdev,server,export,frame_size,queue_depth,read_only,timeout_ms,retries,disk,stats,window,queues,queue_stats\n")
        })
    }
}

#[vtable]
impl configfs::GroupOperations for Root {
    type Child = DiskConfig;

    fn make_group(&self, _name: &CStr) -> Result<impl PinInit<configfs::Group<DiskConfig>, Error>> {
        let item_type = configfs_attrs! {
            container: configfs::Group<DiskConfig>,
            data: DiskConfig,
            attributes: [
                power: 0,
                netdev: 1,
                server: 2,
                export: 3,
                frame_size: 4,
                queue_depth: 5,
                read_only: 6,
                timeout_ms: 7,
                retries: 8,
                disk: 9,
                stats: 10,
                window: 11,
                queues: 12,
                queue_stats: 13,
            ],
        };
        Ok(configfs::Group::new(
            _name.try_into()?,
            item_type,
            try_pin_init!(DiskConfig {
                state <- new_mutex!(State { settings: Settings::default(), disk: None }),
            }),
        ))
    }
}

struct State {
    settings: Settings,
    disk: Option<EbdDisk>,
}

/// One disk directory.
#[pin_data]
pub(crate) struct DiskConfig {
    #[pin]
    state: Mutex<State>,
}

impl DiskConfig {
    /// Shows what `f` writes about the powered-on disk's personality;
    /// `ENODEV` while powered off.
    fn show_powered(
        &self,
        page: &mut [u8; PAGE_SIZE],
        f: impl FnOnce(&Personality<Completer>, &mut Formatter<'_>) -> fmt::Result,
    ) -> Result<usize> {
        let g = self.state.lock();
        let Some(d) = &g.disk else {
            return Err(ENODEV);
        };
        let p = d.personality();
        show_attribute(page, |w| f(p, w))
    }

    /// Changes a setting; `EBUSY` while powered on.
    fn set(&self, f: impl FnOnce(&mut Settings) -> Result) -> Result {
        let mut g = self.state.lock();
        if g.disk.is_some() {
            return Err(EBUSY);
        }
        f(&mut g.settings)
    }
}


/// Parses `aa:bb:cc:dd:ee:ff`; an empty value or `discover` means none.
fn parse_mac(s: &str) -> Result<Option<MacAddr>> {
    if s.is_empty() || s == "discover" {
        return Ok(None);
    }
    let mut bytes = [0u8; 6];
    let mut parts = s.split(':');
    for b in bytes.iter_mut() {
        let part = parts.next().ok_or(EINVAL)?;
        if part.len() != 2 {
            return Err(EINVAL);
        }
        *b = u8::from_str_radix(part, 16).map_err(|_| EINVAL)?;
    }
    let mac = MacAddr::new(bytes);
    if parts.next().is_some() || !mac.is_valid_unicast() {
        return Err(EINVAL);
    }
    Ok(Some(mac))
}

fn write_mac(w: &mut Formatter<'_>, m: &MacAddr) -> fmt::Result {
    let b = m.as_bytes();
    w.write_fmt(fmt!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5]))
}

#[vtable]
impl AttributeOperations<0> for DiskConfig {
    type Data = DiskConfig;

    fn show(this: &DiskConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let on = this.state.lock().disk.is_some();
        show_attribute(page, |w| on.show(w))
    }

    fn store(this: &DiskConfig, page: &[u8]) -> Result {
        let on = kstrtobool_bytes(page)?;
        let mut g = this.state.lock();
        match (g.disk.is_some(), on) {
            (false, true) => g.disk = Some(EbdDisk::power_on(&g.settings)?),
            (true, false) => drop(g.disk.take()),
            _ => {}
        }
        Ok(())
    }
}

#[vtable]
impl AttributeOperations<1> for DiskConfig {
    type Data = DiskConfig;

    fn show(this: &DiskConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let g = this.state.lock();
        let name = g.settings.netdev.as_ref().and_then(|n| n.to_str().ok()).unwrap_or("");
        show_attribute(page, |w| w.write_fmt(fmt!("{}\n", name)))
    }

    fn store(this: &DiskConfig, page: &[u8]) -> Result {
        let name = attribute_text(page)?;
        // IFNAMSIZ includes the terminating NUL.
        if name.is_empty() || name.len() >= IFNAMSIZ || name.contains('/') {
            return Err(EINVAL);
        }
        let name = CString::try_from_fmt(fmt!("{}", name))?;
        this.set(|s| {
            s.netdev = Some(name);
            Ok(())
        })
    }
}

#[vtable]
impl AttributeOperations<2> for DiskConfig {
    type Data = DiskConfig;

    fn show(this: &DiskConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let g = this.state.lock();
        // Once powered on, the server actually bound (it may have been
        // discovered).
        let server = g.disk.as_ref().and_then(|d| d.personality().server()).or(g.settings.server);
        show_attribute(page, |w| {
            match server {
                Some(m) => write_mac(w, &m)?,
                None => w.write_str("discover")?,
            }
            w.write_str("\n")
        })
    }

    fn store(this: &DiskConfig, page: &[u8]) -> Result {
        let mac = parse_mac(attribute_text(page)?)?;
        this.set(|s| {
            s.server = mac;
            Ok(())
        })
    }
}

/// A value a settings attribute reads and writes: numbers in decimal,
/// booleans as `0`/`1` (and whatever `kstrtobool` accepts).
trait SettingValue: Copy + PartialOrd + Sized {
    fn parse(page: &[u8]) -> Result<Self>;
    fn show(self, w: &mut Formatter<'_>) -> fmt::Result;
}

impl SettingValue for bool {
    fn parse(page: &[u8]) -> Result<Self> {
        kstrtobool_bytes(page)
    }

    fn show(self, w: &mut Formatter<'_>) -> fmt::Result {
        w.write_str(if self { "1\n" } else { "0\n" })
    }
}

macro_rules! number_setting_value {
    ($($ty:ty),*) => {$(
        impl SettingValue for $ty {
            fn parse(page: &[u8]) -> Result<Self> {
                attribute_text(page)?.parse().map_err(|_| EINVAL)
            }

            fn show(self, w: &mut Formatter<'_>) -> fmt::Result {
                w.write_fmt(fmt!("{}\n", self))
            }
        }
    )*};
}
number_setting_value!(u16, u32);

/// A plain setting: attribute `$id` shows and stores field `$field`, which
/// must lie in `$range`; stores are refused while powered on.
macro_rules! setting_attribute {
    ($id:literal, $field:ident, $range:expr) => {
        #[vtable]
        impl AttributeOperations<$id> for DiskConfig {
            type Data = DiskConfig;

            fn show(this: &DiskConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
                let v = this.state.lock().settings.$field;
                show_attribute(page, |w| v.show(w))
            }

            fn store(this: &DiskConfig, page: &[u8]) -> Result {
                let v = SettingValue::parse(page)?;
                if !($range).contains(&v) {
                    return Err(EINVAL);
                }
                this.set(|s| {
                    s.$field = v;
                    Ok(())
                })
            }
        }
    };
}

setting_attribute!(3, export, 0..=u16::MAX);
// 0 means the device MTU; otherwise at least a header and one sector.
setting_attribute!(4, frame_size, 0..=65535);
setting_attribute!(5, queue_depth, 1..=1024);
setting_attribute!(6, read_only, false..=true);
setting_attribute!(7, timeout_ms, 10..=60_000);
setting_attribute!(8, retries, 0..=100);
// Response frames outstanding at once; 0 means four per queue slot.
setting_attribute!(11, window, 0..=65536);
// Hardware queues, one per CPU up to this many; 0 means one per CPU.
setting_attribute!(12, queues, 0..=MAX_QUEUES);

#[vtable]
impl AttributeOperations<13> for DiskConfig {
    type Data = DiskConfig;

    /// One line per queue: `queue N` and its counters as `name=value`
    /// pairs (those that tell how the queue fares), then its length.
    fn show(this: &DiskConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        this.show_powered(page, |p, w| {
            for q in 0..p.queues() {
                let Some((s, len)) = p.queue_stats(q) else { continue };
                w.write_fmt(fmt!(
                    "queue {} requests={} completed={} failed={} tx_frames={} retransmits={} early_resends={} \
                     timeouts={} queue_full={} queue_high_water={} rto_ms={} drop_stale={} drop_duplicate={} \
                     queue_len={}\n",
                    q,
                    s.requests,
                    s.completed,
                    s.failed,
                    s.tx_frames,
                    s.retransmits,
                    s.early_resends,
                    s.timeouts,
                    s.queue_full,
                    s.queue_high_water,
                    s.rto_ms,
                    s.drop_stale,
                    s.drop_duplicate,
                    len
                ))?;
            }
            Ok(())
        })
    }
}

#[vtable]
impl AttributeOperations<9> for DiskConfig {
    type Data = DiskConfig;

    /// `ebdN size block_size` while powered on, empty otherwise.
    fn show(this: &DiskConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let g = this.state.lock();
        show_attribute(page, |w| match &g.disk {
            Some(d) => {
                let info = d.info();
                w.write_fmt(fmt!(
                    "{} {} {}\n",
                    d.name().to_str().unwrap_or("?"),
                    info.size,
                    info.block_size
                ))
            }
            None => Ok(()),
        })
    }
}

#[vtable]
impl AttributeOperations<10> for DiskConfig {
    type Data = DiskConfig;

    /// `name value` lines: the personality's counters and queue state.
    fn show(this: &DiskConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        this.show_powered(page, |p, w| {
            for (name, value) in p.stats().fields() {
                w.write_fmt(fmt!("{} {}\n", name, value))?;
            }
            w.write_fmt(fmt!("queue_len {}\n", p.queue_len()))?;
            w.write_fmt(fmt!("queue_max {}\n", p.max_queue_len()))?;
            w.write_fmt(fmt!("payload_per_frame {}\n", p.payload_per_frame()))?;
            w.write_fmt(fmt!("pinned_bytes {}\n", p.pinned_bytes()))?;
            w.write_fmt(fmt!("window_bytes {}\n", p.window_bytes()))?;
            w.write_fmt(fmt!("session {}\n", p.protocol().session()))?;
            w.write_fmt(fmt!("queues {}\n", p.queues()))?;
            w.write_fmt(fmt!("detached {}\n", u8::from(p.is_detached())))
        })
    }
}
