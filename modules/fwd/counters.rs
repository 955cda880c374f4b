// SPDX-License-Identifier: GPL-2.0

//! What one attached device's router did with the frames it received:
//! forwarded (by path), left to the stack (by reason), held for room in
//! the egress, dropped (malformed, by reason; refused by the egress; a full
//! backlog; no memory). Read as `name value` lines from configfs
//! (`docs/forwarding.md` lists them).

use crate::{decide::ToStack, ipv4::Malformed, Mode};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use kernel::{fmt, prelude::*};

/// Counters of one attached device. Relaxed atomics: each is a total on
/// its own, read while traffic runs.
#[derive(Default)]
pub(crate) struct Counters {
    forwarded: [AtomicU64; Mode::ALL.len()],
    forwarded_bytes: [AtomicU64; Mode::ALL.len()],
    /// Bytes the device paths moved across the bus for the frames they
    /// forwarded: header copies, PIO reads and writes, peer transfers. The
    /// conventional path's DMA is the driver's own and is not seen here.
    bus_bytes: [AtomicU64; Mode::ALL.len()],
    to_stack: [AtomicU64; ToStack::ALL.len()],
    malformed: [AtomicU64; Malformed::ALL.len()],
    /// The egress device's queue dropped the frame, or it was down.
    egress_dropped: AtomicU64,
    /// Frames that waited in the ingress NIC's memory for room in their
    /// egress NIC (each counted once, however long it waited).
    held: AtomicU64,
    /// Frames dropped because the ingress NIC's backlog was full.
    backlog_full: AtomicU64,
    /// A copy or header reallocation the forward needed failed.
    no_memory: AtomicU64,
    /// In place: a header read over the bus got no answer in time (the bus
    /// was held by transfers queued before it for longer than a PIO read
    /// may wait), or the NIC went meanwhile.
    bus_timeout: AtomicU64,
}

impl Counters {
    pub(crate) fn forwarded(&self, mode: Mode, bytes: u32) {
        self.forwarded[mode as usize].fetch_add(1, Relaxed);
        self.forwarded_bytes[mode as usize].fetch_add(u64::from(bytes), Relaxed);
    }

    /// A frame forwarded by a device path, which took `bus` bytes of bus
    /// transactions.
    pub(crate) fn forwarded_over_bus(&self, mode: Mode, bytes: u32, bus: u32) {
        self.forwarded(mode, bytes);
        self.bus_bytes[mode as usize].fetch_add(u64::from(bus), Relaxed);
    }

    pub(crate) fn egress_dropped(&self) {
        self.egress_dropped.fetch_add(1, Relaxed);
    }

    pub(crate) fn held(&self) {
        self.held.fetch_add(1, Relaxed);
    }

    pub(crate) fn backlog_full(&self) {
        self.backlog_full.fetch_add(1, Relaxed);
    }

    pub(crate) fn no_memory(&self) {
        self.no_memory.fetch_add(1, Relaxed);
    }

    pub(crate) fn bus_timeout(&self) {
        self.bus_timeout.fetch_add(1, Relaxed);
    }

    pub(crate) fn to_stack(&self, why: ToStack) {
        self.to_stack[why as usize].fetch_add(1, Relaxed);
    }

    pub(crate) fn malformed(&self, why: Malformed) {
        self.malformed[why as usize].fetch_add(1, Relaxed);
    }

    /// Every counter, one `name value` line each.
    pub(crate) fn show(&self, w: &mut impl fmt::Write) -> fmt::Result {
        for mode in Mode::ALL {
            let i = mode as usize;
            w.write_fmt(fmt!("forwarded.{} {}\n", mode.name(), self.forwarded[i].load(Relaxed)))?;
            w.write_fmt(fmt!("forwarded_bytes.{} {}\n", mode.name(), self.forwarded_bytes[i].load(Relaxed)))?;
            if mode != Mode::Conventional {
                w.write_fmt(fmt!("bus_bytes.{} {}\n", mode.name(), self.bus_bytes[i].load(Relaxed)))?;
            }
        }
        for why in ToStack::ALL {
            w.write_fmt(fmt!("to_stack.{} {}\n", why.name(), self.to_stack[why as usize].load(Relaxed)))?;
        }
        for why in Malformed::ALL {
            w.write_fmt(fmt!("malformed.{} {}\n", why.name(), self.malformed[why as usize].load(Relaxed)))?;
        }
        w.write_fmt(fmt!("dropped.egress {}\n", self.egress_dropped.load(Relaxed)))?;
        w.write_fmt(fmt!("held {}\n", self.held.load(Relaxed)))?;
        w.write_fmt(fmt!("dropped.backlog_full {}\n", self.backlog_full.load(Relaxed)))?;
        w.write_fmt(fmt!("dropped.no_memory {}\n", self.no_memory.load(Relaxed)))?;
        w.write_fmt(fmt!("dropped.bus_timeout {}\n", self.bus_timeout.load(Relaxed)))
    }

    /// Sets every counter to zero.
    pub(crate) fn reset(&self) {
        let arrays = [&self.forwarded[..], &self.forwarded_bytes, &self.bus_bytes, &self.to_stack, &self.malformed];
        let singles = [&self.egress_dropped, &self.held, &self.backlog_full, &self.no_memory, &self.bus_timeout];
        for c in Iterator::chain(arrays.into_iter().flatten(), singles) {
            c.store(0, Relaxed);
        }
    }
}
