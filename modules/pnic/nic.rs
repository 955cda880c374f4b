// SPDX-License-Identifier: GPL-2.0

//! One NIC's hardware state: its host rings, its engine's run state, its
//! attachment to a bus and its counters. It lives in the pair's shared state
//! ([`crate::pair::PairShared`]), not in the net device, because the DMA
//! engines and the far NIC's wire reach it while the device may be going
//! away.

use crate::{bus::Bus, bus::Traffic, end::End, mem::Slot, ring::Ring};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use kernel::{
    net::{
        driver::DeviceRef,
        skb::{Shared, SkBuff, Writable},
    },
    new_spinlock_bh,
    prelude::*,
    sync::{Arc, SpinLockBh},
};

/// Transmit descriptors the host can post before the queue stops.
pub(crate) const TX_RING: usize = 256;
/// Received frames DMA'd to the host and not yet taken by the poll.
pub(crate) const RX_COMPLETIONS: usize = 256;

/// Whether the DMA engine runs, and whether a pass of it is queued.
///
/// `scheduled` is set by whoever queues a pass and cleared by the pass that
/// finds nothing more to do, so a NIC has at most one pass queued or running.
/// `rekick` records a kick that arrived while a pass ran: that pass then
/// looks again instead of going idle (no lost wake-up).
#[derive(Default)]
pub(crate) struct EngineState {
    pub(crate) running: bool,
    pub(crate) scheduled: bool,
    pub(crate) rekick: bool,
}

/// Per-NIC counters (`stats64` and the `stats` attribute).
#[derive(Default)]
pub(crate) struct NicCounters {
    pub(crate) tx_packets: AtomicU64,
    pub(crate) tx_bytes: AtomicU64,
    pub(crate) tx_dropped: AtomicU64,
    pub(crate) rx_packets: AtomicU64,
    pub(crate) rx_bytes: AtomicU64,
    /// Frames the host could not take (no skb, poll refused them).
    pub(crate) rx_dropped: AtomicU64,
    /// Frames lost because this NIC's receive memory was full.
    pub(crate) rx_missed: AtomicU64,
    /// Frames sent while the far end was down (lost on the wire; they count
    /// as sent, as on a real NIC).
    pub(crate) tx_carrier: AtomicU64,
    /// Frames larger than the transmit pool could ever hold, dropped.
    pub(crate) tx_too_big: AtomicU64,
    /// Times a frame to send was left in the ring because transmit memory
    /// was full.
    pub(crate) tx_mem_full: AtomicU64,
    /// Engine passes, and the time they ran (the emulation's CPU cost).
    pub(crate) engine_passes: AtomicU64,
    pub(crate) engine_ns: AtomicU64,
}

impl NicCounters {
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }
}

/// A NIC of a pair.
#[pin_data]
pub(crate) struct Nic {
    pub(crate) index: usize,
    /// Frames the stack handed to the NIC, waiting for the engine to DMA
    /// them into device memory. Taken by `start_xmit` (bottom halves off)
    /// and by the engine.
    #[pin]
    pub(crate) tx: SpinLockBh<Ring<SkBuff<Shared>>>,
    /// Frames the wire delivered into this NIC's receive memory.
    #[pin]
    pub(crate) wire_in: SpinLockBh<Ring<Slot>>,
    /// Frames DMA'd into host memory, for the NAPI poll (softirq).
    #[pin]
    pub(crate) completions: SpinLockBh<Ring<SkBuff<Writable>>>,
    #[pin]
    pub(crate) engine: SpinLockBh<EngineState>,
    /// The net device, while it is up: what the engine delivers to. Set by
    /// `open`, taken back by `stop` after the engine stopped, so the device
    /// can unregister.
    #[pin]
    pub(crate) dev: SpinLockBh<Option<DeviceRef<End>>>,
    /// Set while the NIC stops: the engine starts nothing new and waits for
    /// no bus time, so `stop` (under RTNL) is not held up by a slow bus.
    pub(crate) stopping: AtomicBool,
    /// Set when a frame to send found no room in device memory although the
    /// pool's quota had some (the arena was fragmented): whoever frees
    /// memory kicks the engine again.
    pub(crate) tx_waits_for_memory: AtomicBool,
    /// The bus the NIC sits on (none: unlimited).
    pub(crate) bus: Option<Arc<Bus>>,
    pub(crate) traffic: Traffic,
    pub(crate) counters: NicCounters,
}

impl Nic {
    /// NIC `index` with room for `wire_slots` received frames in its memory.
    pub(crate) fn new(index: usize, wire_slots: usize, bus: Option<Arc<Bus>>) -> Result<impl PinInit<Self, Error>> {
        let tx = Ring::new(TX_RING)?;
        let wire_in = Ring::new(wire_slots)?;
        let completions = Ring::new(RX_COMPLETIONS)?;
        Ok(try_pin_init!(Nic {
            index,
            tx <- new_spinlock_bh!(tx),
            wire_in <- new_spinlock_bh!(wire_in),
            completions <- new_spinlock_bh!(completions),
            engine <- new_spinlock_bh!(EngineState::default()),
            dev <- new_spinlock_bh!(None),
            stopping: AtomicBool::new(false),
            tx_waits_for_memory: AtomicBool::new(false),
            bus,
            traffic: Traffic::default(),
            counters: NicCounters::default(),
        }))
    }
}
