// SPDX-License-Identifier: GPL-2.0

//! The configfs interface, two subsystems:
//!
//! - `pnic_bus/BUS/`: a modelled bus; `bandwidth_bps`, `arbitration_ns`,
//!   `pio_read_ns` (changeable at any time) and `stats`.
//! - `pnic/PAIR/`: a pair; `name_a`, `name_b`, `mem_kib`, `tx_percent`,
//!   `flow_control`, `bus_a`, `bus_b` (refused while powered), `power` (1
//!   registers both devices, 0 or `rmdir` removes them), `devices` and
//!   `stats`.

use crate::{
    bus::{Bus, BusParams},
    pair::{Pair, Settings},
};
use core::sync::atomic::Ordering::Relaxed;
use kernel::{
    configfs::{self, attribute_text, show_attribute, AttributeOperations},
    configfs_attrs,
    fmt::Write as _,
    net::device::IFNAMSIZ,
    new_mutex,
    page::PAGE_SIZE,
    prelude::*,
    str::{kstrtobool_bytes, CString},
    sync::{Arc, Mutex},
};

/// The buses by name, shared by both subsystems: a pair finds its buses
/// here when it powers on and keeps them (a bus removed from configfs
/// lives on while a pair uses it).
#[pin_data]
pub(crate) struct Registry {
    #[pin]
    buses: Mutex<KVec<(CString, Arc<Bus>)>>,
    /// Multiplies every modelled duration (module parameter `time_scale`).
    scale: u64,
}

impl Registry {
    /// `scale` must be 1 to 1000.
    pub(crate) fn new(scale: u64) -> Result<Arc<Self>> {
        if !(1..=1000).contains(&scale) {
            return Err(EINVAL);
        }
        Arc::pin_init(try_pin_init!(Registry { buses <- new_mutex!(KVec::new()), scale }), GFP_KERNEL)
    }

    fn find(&self, name: &str) -> Option<Arc<Bus>> {
        self.buses.lock().iter().find(|(n, _)| n.to_str().ok() == Some(name)).map(|(_, b)| b.clone())
    }
}


fn parse_u64(page: &[u8]) -> Result<u64> {
    attribute_text(page)?.parse().map_err(|_| EINVAL)
}

// ---- pnic_bus ----

pub(crate) fn bus_subsystem(registry: Arc<Registry>) -> impl PinInit<configfs::Subsystem<BusRoot>, Error> {
    let item_type = configfs_attrs! {
        container: configfs::Subsystem<BusRoot>,
        data: BusRoot,
        child: BusConfig,
        attributes: [],
    };
    configfs::Subsystem::new(c"pnic_bus", item_type, try_pin_init!(BusRoot { registry }))
}

/// The `pnic_bus` directory.
#[pin_data]
pub(crate) struct BusRoot {
    registry: Arc<Registry>,
}

#[vtable]
impl configfs::GroupOperations for BusRoot {
    type Child = BusConfig;

    fn make_group(&self, name: &CStr) -> Result<impl PinInit<configfs::Group<BusConfig>, Error>> {
        let item_type = configfs_attrs! {
            container: configfs::Group<BusConfig>,
            data: BusConfig,
            attributes: [
                bandwidth_bps: 0,
                arbitration_ns: 1,
                pio_read_ns: 2,
                stats: 3,
            ],
        };
        let bus = Arc::new(Bus::new(BusParams::default()), GFP_KERNEL)?;
        let key = CString::try_from_fmt(fmt!("{}", name.to_str().map_err(|_| EINVAL)?))?;
        let group_name = name.try_into()?;
        // Registered last, once nothing else can fail.
        self.registry.buses.lock().push((key, bus.clone()), GFP_KERNEL)?;
        Ok(configfs::Group::new(
            group_name,
            item_type,
            try_pin_init!(BusConfig { bus, registry: self.registry.clone() }),
        ))
    }
}

/// One bus directory.
#[pin_data(PinnedDrop)]
pub(crate) struct BusConfig {
    bus: Arc<Bus>,
    registry: Arc<Registry>,
}

#[pinned_drop]
impl PinnedDrop for BusConfig {
    fn drop(self: Pin<&mut Self>) {
        // `rmdir`: pairs can no longer find the bus; those using it keep it.
        let mut buses = self.registry.buses.lock();
        buses.retain(|(_, b)| !Arc::ptr_eq(b, &self.bus));
    }
}

macro_rules! bus_parameter {
    ($id:literal, $field:ident) => {
        #[vtable]
        impl AttributeOperations<$id> for BusConfig {
            type Data = BusConfig;

            fn show(this: &BusConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
                let v = this.bus.params().$field;
                show_attribute(page, |w| w.write_fmt(fmt!("{}\n", v)))
            }

            fn store(this: &BusConfig, page: &[u8]) -> Result {
                let mut p = this.bus.params();
                p.$field = parse_u64(page)?;
                this.bus.set_params(p)
            }
        }
    };
}

bus_parameter!(0, bandwidth_bps);
bus_parameter!(1, arbitration_ns);
bus_parameter!(2, pio_read_ns);

#[vtable]
impl AttributeOperations<3> for BusConfig {
    type Data = BusConfig;

    /// `KIND.transactions|bytes|busy_ns|wait_ns N` lines; writing anything
    /// sets them to zero.
    fn show(this: &BusConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        show_attribute(page, |w| this.bus.traffic.show("", w))
    }

    fn store(this: &BusConfig, _page: &[u8]) -> Result {
        this.bus.traffic.reset();
        Ok(())
    }
}

// ---- pnic ----

pub(crate) fn pair_subsystem(registry: Arc<Registry>) -> impl PinInit<configfs::Subsystem<PairRoot>, Error> {
    let item_type = configfs_attrs! {
        container: configfs::Subsystem<PairRoot>,
        data: PairRoot,
        child: PairConfig,
        attributes: [],
    };
    configfs::Subsystem::new(c"pnic", item_type, try_pin_init!(PairRoot { registry }))
}

/// The `pnic` directory.
#[pin_data]
pub(crate) struct PairRoot {
    registry: Arc<Registry>,
}

#[vtable]
impl configfs::GroupOperations for PairRoot {
    type Child = PairConfig;

    fn make_group(&self, name: &CStr) -> Result<impl PinInit<configfs::Group<PairConfig>, Error>> {
        let item_type = configfs_attrs! {
            container: configfs::Group<PairConfig>,
            data: PairConfig,
            attributes: [
                power: 0,
                name_a: 1,
                name_b: 2,
                mem_kib: 3,
                tx_percent: 4,
                bus_a: 5,
                bus_b: 6,
                devices: 7,
                stats: 8,
                flow_control: 9,
            ],
        };
        let key = CString::try_from_fmt(fmt!("{}", name.to_str().map_err(|_| EINVAL)?))?;
        Ok(configfs::Group::new(
            name.try_into()?,
            item_type,
            try_pin_init!(PairConfig {
                name: key,
                registry: self.registry.clone(),
                state <- new_mutex!(PairState { settings: Settings::default(), bus_names: [None, None], pair: None }),
            }),
        ))
    }
}

struct PairState {
    settings: Settings,
    bus_names: [Option<CString>; 2],
    pair: Option<Pair>,
}

/// One pair directory.
#[pin_data]
pub(crate) struct PairConfig {
    name: CString,
    registry: Arc<Registry>,
    #[pin]
    state: Mutex<PairState>,
}

impl PairConfig {
    /// Changes a setting; `EBUSY` while powered on.
    fn set(&self, f: impl FnOnce(&mut PairState) -> Result) -> Result {
        let mut g = self.state.lock();
        if g.pair.is_some() {
            return Err(EBUSY);
        }
        f(&mut g)
    }

    fn power_on(&self, g: &mut PairState) -> Result {
        for i in 0..2 {
            g.settings.buses[i] = match &g.bus_names[i] {
                Some(n) => Some(self.registry.find(n.to_str().map_err(|_| EINVAL)?).ok_or(ENOENT)?),
                None => None,
            };
        }
        g.pair = Some(Pair::power_on(&self.name, &g.settings, self.registry.scale)?);
        Ok(())
    }
}

#[vtable]
impl AttributeOperations<0> for PairConfig {
    type Data = PairConfig;

    fn show(this: &PairConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let on = this.state.lock().pair.is_some();
        show_attribute(page, |w| w.write_str(if on { "1\n" } else { "0\n" }))
    }

    fn store(this: &PairConfig, page: &[u8]) -> Result {
        let on = kstrtobool_bytes(page)?;
        let mut g = this.state.lock();
        match (g.pair.is_some(), on) {
            (false, true) => this.power_on(&mut g)?,
            (true, false) => drop(g.pair.take()),
            _ => {}
        }
        Ok(())
    }
}

/// A device name setting (`%d` allowed, as for `ip link add`).
macro_rules! name_attribute {
    ($id:literal, $i:literal) => {
        #[vtable]
        impl AttributeOperations<$id> for PairConfig {
            type Data = PairConfig;

            fn show(this: &PairConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
                let g = this.state.lock();
                let n = g.settings.names[$i].as_ref().and_then(|n| n.to_str().ok()).unwrap_or("pnic%d");
                show_attribute(page, |w| w.write_fmt(fmt!("{}\n", n)))
            }

            fn store(this: &PairConfig, page: &[u8]) -> Result {
                let name = attribute_text(page)?;
                if name.is_empty() || name.len() >= IFNAMSIZ || name.contains('/') || name.contains(' ') {
                    return Err(EINVAL);
                }
                let name = CString::try_from_fmt(fmt!("{}", name))?;
                this.set(|g| {
                    g.settings.names[$i] = Some(name);
                    Ok(())
                })
            }
        }
    };
}

name_attribute!(1, 0);
name_attribute!(2, 1);

/// A number setting within a range.
macro_rules! number_attribute {
    ($id:literal, $field:ident, $range:expr) => {
        #[vtable]
        impl AttributeOperations<$id> for PairConfig {
            type Data = PairConfig;

            fn show(this: &PairConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
                let v = this.state.lock().settings.$field;
                show_attribute(page, |w| w.write_fmt(fmt!("{}\n", v)))
            }

            fn store(this: &PairConfig, page: &[u8]) -> Result {
                let v: u32 = attribute_text(page)?.parse().map_err(|_| EINVAL)?;
                if !($range).contains(&v) {
                    return Err(EINVAL);
                }
                this.set(|g| {
                    g.settings.$field = v;
                    Ok(())
                })
            }
        }
    };
}

// From 16 KiB to 16 MiB per NIC. A pool smaller than a frame drops that
// frame (counted: `rx_missed`, `tx_too_big`) rather than blocking.
number_attribute!(3, mem_kib, 16..=16384);
number_attribute!(4, tx_percent, 10..=90);
// 1: a receiver whose memory is full holds the sender back; 0: it loses
// the frame (counted).
number_attribute!(9, flow_control, 0..=1);

/// The bus a NIC sits on, by its `pnic_bus` directory name; empty for none.
macro_rules! bus_attribute {
    ($id:literal, $i:literal) => {
        #[vtable]
        impl AttributeOperations<$id> for PairConfig {
            type Data = PairConfig;

            fn show(this: &PairConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
                let g = this.state.lock();
                let n = g.bus_names[$i].as_ref().and_then(|n| n.to_str().ok()).unwrap_or("");
                show_attribute(page, |w| w.write_fmt(fmt!("{}\n", n)))
            }

            fn store(this: &PairConfig, page: &[u8]) -> Result {
                let name = attribute_text(page)?;
                let name = if name.is_empty() { None } else { Some(CString::try_from_fmt(fmt!("{}", name))?) };
                // Checked now for a clear error, and again at power-on.
                if let Some(n) = &name {
                    this.registry.find(n.to_str().map_err(|_| EINVAL)?).ok_or(ENOENT)?;
                }
                this.set(|g| {
                    g.bus_names[$i] = name;
                    Ok(())
                })
            }
        }
    };
}

bus_attribute!(5, 0);
bus_attribute!(6, 1);

#[vtable]
impl AttributeOperations<7> for PairConfig {
    type Data = PairConfig;

    /// The two devices' names while powered, as `A B`; empty otherwise.
    fn show(this: &PairConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let g = this.state.lock();
        show_attribute(page, |w| {
            let Some(pair) = &g.pair else { return Ok(()) };
            let mut sep = "";
            for reg in pair.devices() {
                w.write_fmt(fmt!("{}{}", sep, reg.device().name()))?;
                sep = " ";
            }
            w.write_str("\n")
        })
    }
}

#[vtable]
impl AttributeOperations<8> for PairConfig {
    type Data = PairConfig;

    /// `a.NAME N` and `b.NAME N` lines: each NIC's frame counters, its bus
    /// traffic by kind, and its memory pools (in 256-byte chunks).
    fn show(this: &PairConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let g = this.state.lock();
        let Some(pair) = &g.pair else {
            return Err(ENODEV);
        };
        let shared = pair.shared();
        show_attribute(page, |w| {
            for (i, p) in ["a.", "b."].into_iter().enumerate() {
                let c = &shared.nic(i).counters;
                for (name, v) in [
                    ("tx_packets", &c.tx_packets),
                    ("tx_bytes", &c.tx_bytes),
                    ("tx_dropped", &c.tx_dropped),
                    ("tx_carrier", &c.tx_carrier),
                    ("tx_mem_full", &c.tx_mem_full),
                    ("tx_too_big", &c.tx_too_big),
                    ("tx_paused", &c.tx_paused),
                    ("rx_packets", &c.rx_packets),
                    ("rx_bytes", &c.rx_bytes),
                    ("rx_dropped", &c.rx_dropped),
                    ("rx_missed", &c.rx_missed),
                    ("self_transfers", &c.self_transfers),
                    ("peer_out", &c.peer_out),
                    ("peer_in", &c.peer_in),
                    ("fallbacks", &c.fallbacks),
                    ("peer_gone", &c.peer_gone),
                    ("engine_passes", &c.engine_passes),
                    ("engine_ns", &c.engine_ns),
                ] {
                    w.write_fmt(fmt!("{}{} {}\n", p, name, v.load(Relaxed)))?;
                }
                shared.nic(i).traffic.show(p, w)?;
                for (pool, pname) in [(crate::mem::Pool::Rx, "rx"), (crate::mem::Pool::Tx, "tx")] {
                    let u = shared.mem.pool(crate::mem::Owner { nic: i, pool });
                    for (field, v) in [
                        ("quota", u64::from(u.quota)),
                        ("used", u64::from(u.used)),
                        ("high_water", u64::from(u.high_water)),
                        ("failures", u.failures),
                    ] {
                        w.write_fmt(fmt!("{}mem.{}.{} {}\n", p, pname, field, v))?;
                    }
                }
            }
            Ok(())
        })
    }
}
