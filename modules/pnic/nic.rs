// SPDX-License-Identifier: GPL-2.0

//! One NIC's hardware state: its host rings, its engine's run state, its
//! attachment to a bus and its counters. It lives in the pair's shared state
//! ([`crate::pair::PairShared`]), not in the net device, because the DMA
//! engines and the far NIC's wire reach it while the device may be going
//! away.

use crate::{bus::Bus, bus::Traffic, end::End, mem::Slot};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use kernel::{
    alloc::ring::Ring,
    net::{
        driver::DeviceRef,
        peer_dma::{Header, HeaderMode, PeerJob},
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
/// Frames in device memory waiting for the wire (self and peer transfers),
/// and commands from forwarding paths waiting for the engine.
pub(crate) const DEVICE_QUEUE: usize = 256;

/// What the engine posts for the NAPI poll.
pub(crate) enum Completion {
    /// A frame DMA'd into host memory, for the stack.
    Rx(SkBuff<Writable>),
    /// A claimed frame, still in device memory (with its header copy, in
    /// [`HeaderMode::Copy`]), for the consumer.
    Claimed { slot: Slot, header: Option<Header> },
    /// A claimed frame DMA'd into host memory on the consumer's request
    /// (`tag`), or for the stack (`None`) after all.
    Host(SkBuff<Writable>, Option<u64>),
}

/// Work a forwarding path queued for the engine.
pub(crate) enum Command {
    /// DMA a claimed frame into an skb.
    ToHost { slot: Slot, tag: Option<u64> },
    /// Move a claimed frame into another NIC's memory.
    Peer(PeerJob),
}

/// A frame in device memory waiting for the wire, not before `not_before`.
pub(crate) struct Outgoing {
    pub(crate) slot: Slot,
    pub(crate) not_before: u64,
}

/// The claim state as the engine reads it: no claim, in place, or a header
/// copy of 1 to 128 bytes.
const UNCLAIMED: u32 = 0;
const IN_PLACE: u32 = 0x100;

/// Encodes a claim for [`Nic::claim`].
pub(crate) fn encode_claim(mode: Option<HeaderMode>) -> u32 {
    match mode {
        None => UNCLAIMED,
        Some(HeaderMode::InPlace) => IN_PLACE,
        Some(HeaderMode::Copy(n)) => u32::from(n).max(1),
    }
}

/// Decodes [`Nic::claim`].
pub(crate) fn decode_claim(v: u32) -> Option<HeaderMode> {
    match v {
        UNCLAIMED => None,
        IN_PLACE => Some(HeaderMode::InPlace),
        n => Some(HeaderMode::Copy(n.min(u32::from(u8::MAX)) as u8)),
    }
}

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
    /// Frames flow control held back because the far end's receive memory
    /// was full (each counted once).
    pub(crate) tx_paused: AtomicU64,
    /// Frames larger than the transmit pool could ever hold, dropped.
    pub(crate) tx_too_big: AtomicU64,
    /// Times a frame to send was left in the ring because transmit memory
    /// was full.
    pub(crate) tx_mem_full: AtomicU64,
    /// Peer-DMA capability: frames sent back out of this NIC without a DMA
    /// (self transfers), frames moved into another NIC (peer out) and from
    /// one (peer in), claimed frames DMA'd to host memory (fallbacks), and
    /// peer transfers whose destination had gone.
    pub(crate) self_transfers: AtomicU64,
    pub(crate) peer_out: AtomicU64,
    pub(crate) peer_in: AtomicU64,
    pub(crate) fallbacks: AtomicU64,
    pub(crate) peer_gone: AtomicU64,
    /// Engine passes, and the time they ran (the emulation's CPU cost).
    pub(crate) engine_passes: AtomicU64,
    pub(crate) engine_ns: AtomicU64,
}

impl NicCounters {
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
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
    /// Frames for the NAPI poll (softirq).
    #[pin]
    pub(crate) completions: SpinLockBh<Ring<Completion>>,
    /// Frames in device memory waiting for the wire.
    #[pin]
    pub(crate) dev_tx: SpinLockBh<Ring<Outgoing>>,
    /// Work queued by forwarding paths.
    #[pin]
    pub(crate) commands: SpinLockBh<Ring<Command>>,
    /// Frames flow control holds in transmit memory, in wire order, until
    /// the far end's receive memory has room. Only this NIC's engine (and
    /// its `stop`, once the engine stopped) touches it.
    #[pin]
    pub(crate) held: SpinLockBh<Ring<Slot>>,
    /// Set while `held` waits for the far end: whoever frees memory kicks
    /// this NIC's engine.
    pub(crate) held_for_far: AtomicBool,
    /// Whether a forwarding path claimed the NIC, and how ([`encode_claim`]).
    pub(crate) claim: AtomicU32,
    /// Set by whoever queues to `dev_tx` or `commands` (before the kick), so
    /// that engine passes of an unclaimed NIC, which are many and short, do
    /// not lock two empty queues each time.
    pub(crate) device_work: AtomicBool,
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
    /// Tells the engine that `dev_tx` or `commands` has work (call after
    /// queueing it, before the kick).
    pub(crate) fn note_device_work(&self) {
        self.device_work.store(true, Ordering::Release);
    }

    /// NIC `index` with room for `wire_slots` received frames in its memory.
    pub(crate) fn new(index: usize, wire_slots: usize, bus: Option<Arc<Bus>>) -> Result<impl PinInit<Self, Error>> {
        let tx = Ring::new(TX_RING)?;
        let wire_in = Ring::new(wire_slots)?;
        let completions = Ring::new(RX_COMPLETIONS)?;
        let dev_tx = Ring::new(DEVICE_QUEUE)?;
        let commands = Ring::new(DEVICE_QUEUE)?;
        // Every frame in transmit memory takes at least one chunk.
        let held = Ring::new(wire_slots)?;
        Ok(try_pin_init!(Nic {
            index,
            dev_tx <- new_spinlock_bh!(dev_tx),
            commands <- new_spinlock_bh!(commands),
            held <- new_spinlock_bh!(held),
            held_for_far: AtomicBool::new(false),
            claim: AtomicU32::new(UNCLAIMED),
            device_work: AtomicBool::new(false),
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
