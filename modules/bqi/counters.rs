// SPDX-License-Identifier: GPL-2.0

//! An endpoint's counters, in the ABI's order (`IOC_STATS`). Relaxed
//! atomics: each is a total on its own, read while traffic runs.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use kernel::net::bqi::{Stat, STATS_LEN, STAT_COUNT};

#[derive(Default)]
pub(crate) struct Counters([AtomicU64; STAT_COUNT]);

impl Counters {
    pub(crate) fn bump(&self, which: Stat) {
        self.0[which as usize].fetch_add(1, Relaxed);
    }

    /// The counters as `IOC_STATS` returns them.
    pub(crate) fn to_bytes(&self) -> [u8; STATS_LEN] {
        let mut b = [0u8; STATS_LEN];
        for (chunk, c) in b.chunks_exact_mut(8).zip(self.0.iter()) {
            chunk.copy_from_slice(&c.load(Relaxed).to_ne_bytes());
        }
        b
    }
}
