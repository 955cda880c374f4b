// SPDX-License-Identifier: GPL-2.0

//! The configfs interface: `mkdir /sys/kernel/config/aoei/NAME` makes a
//! disk description, its attributes configure it (`netdev`, `target` as
//! `shelf.slot`, `server` as a MAC address or `discover`), `power` adds or
//! removes `/dev/aoeiN`, and `disk`, `stats` and `queue_stats` report on it.

use crate::{
    device::{AoeDisk, Settings},
    protocol::MAX_QUEUE_DEPTH,
    AoeKind,
};
use kernel::{
    configfs::{self, attribute_text, show_attribute, AttributeOperations, AttributeValue},
    configfs_attrs,
    fmt::{self, Write as _},
    net::{
        aoe::{MAJOR_ANY, MINOR_ANY},
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
    configfs::Subsystem::new(c"aoei", item_type, try_pin_init!(Root {}))
}

/// The `aoei` directory itself.
#[pin_data]
pub(crate) struct Root {}

#[vtable]
impl AttributeOperations<0> for Root {
    type Data = Root;

    /// The attributes a disk directory offers.
    fn show(_this: &Root, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        show_attribute(page, |w| {
            w.write_str("power,netdev,server,target,queue_depth,timeout_ms,retries,queues,disk,stats,queue_stats\n")
        })
    }
}

#[vtable]
impl configfs::GroupOperations for Root {
    type Child = DiskConfig;

    fn make_group(&self, name: &CStr) -> Result<impl PinInit<configfs::Group<DiskConfig>, Error>> {
        let item_type = configfs_attrs! {
            container: configfs::Group<DiskConfig>,
            data: DiskConfig,
            attributes: [
                power: 0,
                netdev: 1,
                server: 2,
                target: 3,
                queue_depth: 4,
                timeout_ms: 5,
                retries: 6,
                queues: 7,
                disk: 8,
                stats: 9,
                queue_stats: 10,
            ],
        };
        Ok(configfs::Group::new(
            name.try_into()?,
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
    state: Mutex<DiskSlot<Settings, AoeDisk>>,
}

impl DiskConfig {
    /// Shows what `f` writes about the powered-on disk's personality;
    /// `ENODEV` while powered off.
    fn show_powered(
        &self,
        page: &mut [u8; PAGE_SIZE],
        f: impl FnOnce(&Personality<Completer<AoeKind>>, &mut Formatter<'_>) -> fmt::Result,
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
        this.state.lock().power(on, AoeDisk::power_on)
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

    /// The target's address: once powered on, the one bound (perhaps
    /// found by asking the segment); `discover` when none is set.
    fn show(this: &DiskConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let g = this.state.lock();
        let server = g.disk.as_ref().and_then(|d| d.personality().server()).or(g.settings.server);
        show_attribute(page, |w| match server {
            Some(m) => w.write_fmt(fmt!("{}\n", m)),
            None => w.write_str("discover\n"),
        })
    }

    fn store(this: &DiskConfig, page: &[u8]) -> Result {
        let server = server_setting(attribute_text(page)?)?;
        this.set(|s| s.server = server)
    }
}

#[vtable]
impl AttributeOperations<3> for DiskConfig {
    type Data = DiskConfig;

    /// `shelf.slot`, as the Linux driver names its disks `eS.L`: once
    /// powered on, the target bound (perhaps discovered); `discover` when
    /// none is set.
    fn show(this: &DiskConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let g = this.state.lock();
        let target = g.disk.as_ref().and_then(|d| d.address()).or(g.settings.target);
        show_attribute(page, |w| match target {
            Some((shelf, slot)) => w.write_fmt(fmt!("{}.{}\n", shelf, slot)),
            None => w.write_str("discover\n"),
        })
    }

    /// Takes `shelf.slot`, or `discover` (or nothing) for the first target
    /// to answer; the broadcast shelf and slot are refused.
    fn store(this: &DiskConfig, page: &[u8]) -> Result {
        let target = match attribute_text(page)? {
            "" | "discover" => None,
            text => {
                let (shelf, slot) = text.split_once('.').ok_or(EINVAL)?;
                let shelf: u16 = shelf.parse().map_err(|_| EINVAL)?;
                let slot: u8 = slot.parse().map_err(|_| EINVAL)?;
                if shelf == MAJOR_ANY || slot == MINOR_ANY {
                    return Err(EINVAL);
                }
                Some((shelf, slot))
            }
        };
        this.set(|s| s.target = target)
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

// At most what the tag's slot bits can name.
setting_attribute!(4, queue_depth, 1..=MAX_QUEUE_DEPTH);
setting_attribute!(5, timeout_ms, 10..=60_000);
setting_attribute!(6, retries, 0..=100);
// Hardware queues, one per CPU up to this many; 0 means one per CPU.
setting_attribute!(7, queues, 0..=MAX_QUEUES);

#[vtable]
impl AttributeOperations<8> for DiskConfig {
    type Data = DiskConfig;

    /// `aoeiN sectors buffer_count sector_count firmware` while powered
    /// on, empty otherwise.
    fn show(this: &DiskConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let g = this.state.lock();
        show_attribute(page, |w| match &g.disk {
            Some(d) => {
                let t = d.target();
                w.write_fmt(fmt!(
                    "{} {} {} {} {:#x}\n",
                    d.name().to_str().unwrap_or("?"),
                    t.sectors,
                    t.buffer_count,
                    t.sector_count,
                    t.firmware
                ))
            }
            None => Ok(()),
        })
    }
}

#[vtable]
impl AttributeOperations<9> for DiskConfig {
    type Data = DiskConfig;

    /// `name value` lines: the personality's counters and queue state.
    fn show(this: &DiskConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        this.show_powered(page, |p, w| p.report(w))
    }
}

#[vtable]
impl AttributeOperations<10> for DiskConfig {
    type Data = DiskConfig;

    /// One line per queue, as `queue N name=value ...`.
    fn show(this: &DiskConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        this.show_powered(page, |p, w| p.report_queues(w))
    }
}
