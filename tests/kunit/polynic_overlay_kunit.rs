// SPDX-License-Identifier: GPL-2.0

//! KUnit suites for the polynic overlay's networking abstractions, run
//! against real devices: loopback and the veth pair `pnk0`/`pnk1` that the
//! test VM creates before loading this module.

use kernel::prelude::*;

mod bqi_tests;
mod device_tests;
mod driver_tests;
mod notifier_tests;
mod probe_table_tests;
mod packet_tests;
mod ring_tests;
mod skb_tests;
mod storage_tests;
mod workqueue_tests;

module! {
    type: OverlayKunit,
    name: "polynic_overlay_kunit",
    authors: ["polynic developers"],
    description: "KUnit suites for the polynic rust/ overlay (net devices, skbs, handlers)",
    license: "GPL",
}

struct OverlayKunit;

impl kernel::Module for OverlayKunit {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        Ok(OverlayKunit)
    }
}

/// Names of the veth pair the guest creates for these tests.
pub(crate) const VETH_A: &CStr = c"pnk0";
pub(crate) const VETH_B: &CStr = c"pnk1";
