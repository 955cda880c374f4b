// SPDX-License-Identifier: GPL-2.0

//! The configfs interface: `mkdir /sys/kernel/config/ebd/NAME` makes a disk
//! description, its attributes configure it, `power` adds or removes
//! `/dev/ebdN`, and `disk` and `stats` report on it.

use crate::{
    device::{EbdDisk, Settings},
    EbdKind,
};
use kernel::{
    configfs::{self, attribute_text, show_attribute, AttributeOperations, AttributeValue},
    configfs_attrs,
    fmt::{self, Write as _},
    net::{
        device::interface_name,
        storage::{
            disk::{server_setting, Completer, DiskSlot},
            Personality, MAX_QUEUES,
        },
    },
    new_mutex,
    page::PAGE_SIZE,
    prelude::*,
    str::Formatter,
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
                state <- new_mutex!(DiskSlot::default()),
            }),
        ))
    }
}

/// One disk directory.
#[pin_data]
pub(crate) struct DiskConfig {
    #[pin]
    state: Mutex<DiskSlot<Settings, EbdDisk>>,
}

impl DiskConfig {
    /// Shows what `f` writes about the powered-on disk's personality;
    /// `ENODEV` while powered off.
    fn show_powered(
        &self,
        page: &mut [u8; PAGE_SIZE],
        f: impl FnOnce(&Personality<Completer<EbdKind>>, &mut Formatter<'_>) -> fmt::Result,
    ) -> Result<usize> {
        let g = self.state.lock();
        let p = g.powered()?.personality();
        show_attribute(page, |w| f(p, w))
    }

    /// Changes a setting; `EBUSY` while powered on.
    fn set(&self, f: impl FnOnce(&mut Settings)) -> Result {
        self.state.lock().set(f)
    }
}


#[vtable]
impl AttributeOperations<0> for DiskConfig {
    type Data = DiskConfig;

    fn show(this: &DiskConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let on = this.state.lock().disk.is_some();
        show_attribute(page, |w| on.show_value(w))
    }

    fn store(this: &DiskConfig, page: &[u8]) -> Result {
        let on = bool::parse_value(page)?;
        this.state.lock().power(on, EbdDisk::power_on)
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
        let name = interface_name(attribute_text(page)?)?;
        this.set(|s| s.netdev = Some(name))
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
                Some(m) => w.write_fmt(fmt!("{}", m))?,
                None => w.write_str("discover")?,
            }
            w.write_str("\n")
        })
    }

    fn store(this: &DiskConfig, page: &[u8]) -> Result {
        let mac = server_setting(attribute_text(page)?)?;
        this.set(|s| s.server = mac)
    }
}

/// A plain setting: attribute `$id` shows and stores field `$field`, which
/// must lie in `$range`; stores are refused while powered on.
macro_rules! setting_attribute {
    ($id:literal, $field:ident, $range:expr) => {
        #[vtable]
        impl AttributeOperations<$id> for DiskConfig {
            type Data = DiskConfig;

            fn show(this: &DiskConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
                let v = this.state.lock().settings.$field;
                show_attribute(page, |w| v.show_value(w))
            }

            fn store(this: &DiskConfig, page: &[u8]) -> Result {
                let v = AttributeValue::parse_value(page)?;
                if !($range).contains(&v) {
                    return Err(EINVAL);
                }
                this.set(|s| s.$field = v)
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
        this.show_powered(page, |p, w| p.report_queues(w))
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

    /// `name value` lines: the personality's counters and queue state,
    /// and the session.
    fn show(this: &DiskConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        this.show_powered(page, |p, w| {
            p.report(w)?;
            w.write_fmt(fmt!("session {}\n", p.protocol().session()))
        })
    }
}
