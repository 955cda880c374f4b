// SPDX-License-Identifier: GPL-2.0

//! Disk numbers: `/dev/ebdN` takes the lowest free N.

use core::sync::atomic::{AtomicU64, Ordering};
use kernel::prelude::*;

/// Most EBD disks at once.
pub(crate) const MAX_DISKS: u32 = 64;

static IN_USE: AtomicU64 = AtomicU64::new(0);

/// A disk number, free again when dropped.
pub(crate) struct DiskIndex(u32);

impl DiskIndex {
    /// Takes the lowest free number; `ENOSPC` if all are in use.
    pub(crate) fn take() -> Result<Self> {
        let mut current = IN_USE.load(Ordering::Relaxed);
        loop {
            let free = (!current).trailing_zeros();
            if free >= MAX_DISKS {
                return Err(ENOSPC);
            }
            match IN_USE.compare_exchange(current, current | (1 << free), Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Ok(DiskIndex(free)),
                Err(now) => current = now,
            }
        }
    }

    /// The number.
    pub(crate) fn get(&self) -> u32 {
        self.0
    }
}

impl Drop for DiskIndex {
    fn drop(&mut self) {
        IN_USE.fetch_and(!(1 << self.0), Ordering::AcqRel);
    }
}
