// SPDX-License-Identifier: GPL-2.0

//! fwd: the forwarding personality. IPv4 packets received on an attached
//! device are forwarded by a fast path that asks the kernel's own tables
//! (routes, neighbours, the forwarding sysctl) and rewrites only what a
//! router must (TTL and checksum, link header); everything else goes to
//! the stack untouched. See `docs/forwarding.md`.

mod attach;
mod backlog;
mod capable;
mod config;
mod conventional;
mod counters;
mod decide;
mod ipv4;

use kernel::{configfs, prelude::*};

module! {
    type: FwdModule,
    name: "fwd",
    authors: ["polynic developers"],
    description: "IPv4 forwarding personality: a fast path beside the stack",
    license: "GPL",
}

/// The path a device's received packets take when forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The packet is in host memory (an skb), as with any driver.
    Conventional = 0,
    /// The packet stays in the ingress NIC's memory; header fields are read
    /// and written there, one bus transaction each.
    InPlace = 1,
    /// The packet stays in the ingress NIC's memory; its headers are copied
    /// to host memory and back, one transfer each way.
    HeaderCopy = 2,
}

impl Mode {
    pub(crate) const ALL: [Mode; 3] = [Mode::Conventional, Mode::InPlace, Mode::HeaderCopy];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Conventional => "conventional",
            Mode::InPlace => "in-place",
            Mode::HeaderCopy => "header-copy",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Mode> {
        Self::ALL.into_iter().find(|m| m.name() == text)
    }
}

#[pin_data]
struct FwdModule {
    #[pin]
    config: configfs::Subsystem<config::Root>,
}

impl kernel::InPlaceModule for FwdModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(FwdModule { config <- config::subsystem() })
    }
}
