// SPDX-License-Identifier: GPL-2.0

//! An ATA over Ethernet initiator on the storage personality: disks served
//! by unmodified AoE targets (`vblade`, or any that speaks revision 1 with
//! LBA48).
//!
//! The personality (`kernel::net::storage`) does the framing, pacing,
//! response matching, data placement and retransmission and carries the
//! blk-mq requests (`storage::disk`); this module is the protocol
//! (`protocol.rs`), the disk's set-up (`device.rs`) and its configuration
//! (`configfs.rs`: `/sys/kernel/config/aoei/NAME`, each disk appearing as
//! `/dev/aoeiN`).

mod configfs;
mod device;
mod protocol;

use kernel::{net::storage::disk::DiskKind, prelude::*};

module! {
    type: AoeiModule,
    name: "aoei",
    authors: ["polynic developers"],
    description: "ATA over Ethernet initiator over the polynic storage personality",
    license: "GPL",
}

/// The module's disks: they speak AoE and belong to this module.
pub(crate) struct AoeKind;

impl DiskKind for AoeKind {
    type Protocol = protocol::Aoe;
    type Module = LocalModule;
}

/// Module state: the configfs subsystem, which owns every disk.
#[pin_data]
struct AoeiModule {
    #[pin]
    configfs: kernel::configfs::Subsystem<configfs::Root>,
}

impl kernel::InPlaceModule for AoeiModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        pr_info!("AoE initiator (protocol revision {}) loaded\n", kernel::net::aoe::VERSION);
        try_pin_init!(Self { configfs <- configfs::subsystem() })
    }
}
