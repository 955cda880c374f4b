// SPDX-License-Identifier: GPL-2.0

//! pnic: an emulated NIC with its own packet memory, a DMA engine and a
//! modelled I/O bus, in pairs joined by a wire (like veth).
//!
//! To the stack each end is an ordinary Ethernet device. Underneath, as on a
//! real NIC, a frame to send is DMA'd from host memory into the NIC's memory
//! by the NIC's engine, crosses the wire into the far NIC's memory, and is
//! DMA'd from there into a host buffer for the far end's NAPI poll. Every
//! transfer takes time on the bus the NIC sits on (`configfs pnic_bus/`),
//! and is counted. See `docs/pnic.md` for the model and its limits.

mod bus;
mod capable;
mod config;
mod end;
mod engine;
mod mem;
mod nic;
mod pair;

use kernel::prelude::*;

module! {
    type: PnicModule,
    name: "pnic",
    authors: ["polynic developers"],
    description: "Emulated NIC with device packet memory and a modelled I/O bus",
    license: "GPL",
    params: {
        time_scale: u32 {
            default: 1,
            description: "Multiplies every modelled bus duration (1..1000), fixed at load",
        },
    },
}

/// Module state: the two configfs subsystems, which own every bus and pair
/// (and share the bus registry).
#[pin_data]
struct PnicModule {
    #[pin]
    pairs: kernel::configfs::Subsystem<config::PairRoot>,
    #[pin]
    buses: kernel::configfs::Subsystem<config::BusRoot>,
}

impl kernel::InPlaceModule for PnicModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        let scale = module_parameters::time_scale.value();
        // Starts the modelled clock (its first reader fixes its zero).
        bus::now_ns();
        pr_info!("pnic loaded (time_scale {})\n", scale);
        let registry = config::Registry::new(u64::from(scale));
        try_pin_init!(Self {
            pairs <- config::pair_subsystem(registry.clone()?),
            buses <- config::bus_subsystem(registry?),
        })
    }
}
