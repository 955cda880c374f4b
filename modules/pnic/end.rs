// SPDX-License-Identifier: GPL-2.0

//! The net device of one end of a pair, as the stack sees it: an ordinary
//! Ethernet device whose transmit posts to the NIC's host ring and whose
//! NAPI poll takes the frames the DMA engine received.

use crate::{
    nic::{Command, Completion, NicCounters},
    pair::PairShared,
};
use core::sync::atomic::Ordering::Relaxed;
use kernel::{
    net::{
        driver::{Device, Driver, Features, Stats, TxVerdict, XmitSkb},
        napi::{Napi, NapiPoll, Poll},
        peer_dma::{self, Provider},
    },
    prelude::*,
    sync::Arc,
};

/// Jumbo frames, as the issue asks (9000 bytes of payload).
pub(crate) const MAX_MTU: u32 = 9000;

/// An Ethernet header with one VLAN tag: what a frame may carry beyond the
/// MTU.
pub(crate) const MAX_LINK_HEADER: u32 = 18;

/// The driver state of one end.
#[pin_data]
pub(crate) struct End {
    #[pin]
    napi: Napi<End>,
    shared: Arc<PairShared>,
    index: usize,
    /// The NIC's peer-DMA capability, which claimed frames are delivered
    /// through.
    provider: Provider,
}

impl End {
    pub(crate) fn new(shared: Arc<PairShared>, index: usize, provider: Provider) -> impl PinInit<Self, Error> {
        try_pin_init!(End { napi <- Napi::new(), shared, index, provider })
    }

    /// Schedules the receive poll (the engine's "interrupt").
    pub(crate) fn schedule_poll(&self) {
        self.napi.schedule();
    }

    /// Tells forwarding paths waiting for room in this NIC to try again
    /// (`Provider::room_freed`). Process context, no lock held.
    pub(crate) fn room_freed(&self) {
        self.provider.room_freed();
    }

    /// A claimed frame the consumer can no longer take: DMA'd into an skb
    /// for the stack by the engine (or dropped, counted, if its queue is
    /// full).
    fn fall_back(&self, raw: peer_dma::Slot) {
        let nic = self.shared.nic(self.index);
        let Some(slot) = self.shared.mem.slot_from_raw(raw.raw()) else { return };
        {
            let mut commands = nic.commands.lock();
            if !commands.is_full() {
                // Room was checked under the lock: the push cannot fail.
                let _ = commands.push(Command::ToHost { slot, tag: None });
                drop(commands);
                nic.note_device_work();
                self.shared.kick(self.index);
                return;
            }
        }
        self.shared.free(slot);
        NicCounters::add(&nic.counters.rx_dropped, 1);
    }

    fn far_device(&self) -> Option<kernel::net::driver::DeviceRef<End>> {
        self.shared.nic(1 - self.index).dev.lock().clone()
    }
}

#[vtable]
impl Driver for End {
    const MAX_MTU: u32 = MAX_MTU;
    /// Checksum offload: the sum the stack leaves to the NIC travels with
    /// the frame and is computed only where the frame leaves the emulation.
    const FEATURES: Features = Features::HW_CSUM.union(Features::RXCSUM);

    fn setup(dev: &Device<Self>) -> Result {
        dev.data().napi.add(dev);
        // No carrier until both ends are up; set before registration, so
        // that a device opened at once (by udev, say) is not turned off after.
        dev.set_carrier(false);
        Ok(())
    }

    fn open(dev: &Device<Self>) -> Result {
        let me = dev.data();
        let this = dev.get_ref().ok_or(ENODEV)?;
        me.napi.enable()?;
        // Frames that reached the NIC while it was down are stale.
        me.shared.free_queued(me.index);
        me.shared.start_engine(me.index, this);
        // The queue may have been left stopped when the device went down
        // with a full ring (the core does not restart a driver's queue).
        dev.wake_queue();
        // Carrier on both ends once both are up, as on a cable.
        if let Some(far) = me.far_device() {
            dev.set_carrier(true);
            far.set_carrier(true);
        }
        Ok(())
    }

    fn stop(dev: &Device<Self>) -> Result {
        let me = dev.data();
        dev.set_carrier(false);
        if let Some(far) = me.far_device() {
            far.set_carrier(false);
        }
        me.shared.stop_engine(me.index);
        me.napi.disable();
        // What the NIC still held is lost, as on a real NIC reset.
        let nic = me.shared.nic(me.index);
        loop {
            let Some(skb) = nic.tx.lock().pop() else { break };
            drop(skb);
            NicCounters::add(&nic.counters.tx_dropped, 1);
        }
        loop {
            let Some(c) = nic.completions.lock().pop() else { break };
            if let Completion::Claimed { slot, .. } = c {
                me.shared.free(slot);
            }
            NicCounters::add(&nic.counters.rx_dropped, 1);
        }
        me.shared.free_queued(me.index);
        Ok(())
    }

    fn start_xmit<'a>(dev: &Device<Self>, skb: XmitSkb<'a>) -> TxVerdict<'a> {
        let me = dev.data();
        let nic = me.shared.nic(me.index);
        {
            let mut ring = nic.tx.lock();
            if ring.is_full() {
                // Stopped under the ring's lock, so the engine, which wakes
                // the queue after taking from the ring, cannot miss it.
                dev.stop_queue();
                drop(ring);
                me.shared.kick(me.index);
                return skb.requeue();
            }
            if let Err(skb) = ring.push(skb.into_skb()) {
                drop(skb);
                NicCounters::add(&nic.counters.tx_dropped, 1);
                return TxVerdict::Done;
            }
            if ring.is_full() {
                dev.stop_queue();
            }
        }
        me.shared.kick(me.index);
        TxVerdict::Done
    }

    fn stats(dev: &Device<Self>) -> Stats {
        let me = dev.data();
        let c = &me.shared.nic(me.index).counters;
        Stats {
            rx_packets: c.rx_packets.load(Relaxed),
            rx_bytes: c.rx_bytes.load(Relaxed),
            tx_packets: c.tx_packets.load(Relaxed),
            tx_bytes: c.tx_bytes.load(Relaxed),
            rx_dropped: c.rx_dropped.load(Relaxed) + c.rx_missed.load(Relaxed),
            tx_dropped: c.tx_dropped.load(Relaxed),
        }
    }
}

impl NapiPoll for End {
    fn poll(dev: &Device<Self>, poll: &mut Poll<'_, Self>, budget: i32) -> i32 {
        let me = dev.data();
        let nic = me.shared.nic(me.index);
        let mut done = 0;
        while done < budget {
            let Some(c) = nic.completions.lock().pop() else { break };
            match c {
                Completion::Rx(skb) => {
                    let len = u64::from(skb.len());
                    match poll.receive(skb) {
                        Ok(()) => {
                            NicCounters::add(&nic.counters.rx_packets, 1);
                            NicCounters::add(&nic.counters.rx_bytes, len);
                        }
                        Err(_) => NicCounters::add(&nic.counters.rx_dropped, 1),
                    }
                }
                Completion::Claimed { slot, header } => {
                    let len = slot.len();
                    NicCounters::add(&nic.counters.rx_packets, 1);
                    NicCounters::add(&nic.counters.rx_bytes, u64::from(len));
                    let raw = peer_dma::Slot::new(slot.into_raw());
                    if let Err(raw) = me.provider.deliver(poll, raw, len, header) {
                        // The claim went meanwhile: the frame goes to the
                        // stack after all.
                        me.fall_back(raw);
                    }
                }
                Completion::Host(skb, tag) => {
                    let r = match tag {
                        Some(tag) => me.provider.deliver_skb(poll, skb, tag),
                        None => poll.receive(skb),
                    };
                    if r.is_err() {
                        NicCounters::add(&nic.counters.rx_dropped, 1);
                    }
                }
            }
            done += 1;
        }
        // The engine pauses receiving when the completions are full: there
        // is room again.
        if done > 0 && (nic.device_work.load(Relaxed) || !nic.wire_in.lock().is_empty()) {
            me.shared.kick(me.index);
        }
        if done < budget {
            poll.complete_done(done);
        }
        done
    }
}

