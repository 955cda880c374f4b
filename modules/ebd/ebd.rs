// SPDX-License-Identifier: GPL-2.0

//! Ethernet Block Device (EBD): a block device whose I/O travels in raw
//! Ethernet frames to an `ebd-server`.
//!
//! EBD is a thin driver on the kernel's storage personality
//! (`kernel::net::storage`), which does the framing, pacing, response
//! matching and retransmission, speaks EBD's protocol (`storage::ebd`) and
//! carries blk-mq requests (`storage::disk`). Disks are made in configfs
//! (`/sys/kernel/config/ebd/NAME`, see `configfs.rs`); each appears as
//! `/dev/ebdN` with the geometry its server reports.

mod configfs;
mod device;

use kernel::{
    net::storage::{disk::DiskKind, ebd::Ebd, wire},
    prelude::*,
};

module! {
    type: EbdModule,
    name: "ebd",
    authors: ["polynic developers"],
    description: "Ethernet Block Device over the polynic storage personality",
    license: "GPL",
}

/// EBD's disks: they speak EBD and belong to this module.
pub(crate) struct EbdKind;

impl DiskKind for EbdKind {
    type Protocol = Ebd;
    type Module = LocalModule;
}

/// Module state: the configfs subsystem, which owns every disk.
#[pin_data]
struct EbdModule {
    #[pin]
    configfs: kernel::configfs::Subsystem<configfs::Root>,
}

impl kernel::InPlaceModule for EbdModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        pr_info!("EBD wire protocol v{} loaded\n", wire::VERSION);
        try_pin_init!(Self { configfs <- configfs::subsystem() })
    }
}
