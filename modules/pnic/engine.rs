// SPDX-License-Identifier: GPL-2.0

//! The DMA engine of each NIC: it runs apart from the code that asks for
//! transfers (as work items on the pair's queue, in process context), takes
//! descriptors from the host rings, moves the bytes, and makes each transfer
//! visible only when the modelled bus could have carried it.
//!
//! One pass serves up to [`BATCH`] frames each way and then queues the next
//! pass instead of looping, so the worker reaches a scheduling point between
//! passes and `stop` never waits for more than one pass.

use crate::{
    bus::{now_ns, wait_until, Kind},
    end::{End, MAX_LINK_HEADER},
    mem::{Owner, Pool, Slot},
    nic::{decode_claim, Command, Completion, Nic, NicCounters},
    pair::PairShared,
};
use core::sync::atomic::Ordering::{self, Relaxed};
use kernel::{
    net::{
        checksum::PartialSum,
        driver::{Device, Features},
        peer_dma::{Header, HeaderMode, PeerJob, PeerSource},
        skb::{ChecksumRequest, Shared, SkBuff, Writable},
    },
    prelude::*,
    sync::Arc,
    time::{delay::fsleep, Delta},
    workqueue::WorkItem,
};

/// Frames served each way in one pass.
const BATCH: usize = 32;

/// Transfers an engine keeps in flight at once: the bus serves them one
/// after another, and the engine sleeps once for several of them.
const WINDOW: usize = 16;

impl WorkItem<0> for PairShared {
    type Pointer = Arc<PairShared>;

    fn run(this: Arc<PairShared>) {
        PairShared::pass(this, 0);
    }
}

impl WorkItem<1> for PairShared {
    type Pointer = Arc<PairShared>;

    fn run(this: Arc<PairShared>) {
        PairShared::pass(this, 1);
    }
}

impl PairShared {
    /// Tells NIC `i`'s engine there is work (a doorbell). Any context.
    pub(crate) fn kick(self: &Arc<Self>, i: usize) {
        {
            let mut st = self.nic(i).engine.lock();
            if !st.running {
                return;
            }
            if st.scheduled {
                st.rekick = true;
                return;
            }
            st.scheduled = true;
        }
        self.queue_pass(i);
    }

    fn queue_pass(self: &Arc<Self>, i: usize) {
        // Only the holder of `scheduled` queues a pass, so the item is never
        // already queued; were it, the pass queued would serve this kick too.
        let _ = if i == 0 {
            self.queue.enqueue::<Arc<PairShared>, 0>(self.clone())
        } else {
            self.queue.enqueue::<Arc<PairShared>, 1>(self.clone())
        };
    }

    /// Starts NIC `i`'s engine, delivering to `dev`.
    pub(crate) fn start_engine(&self, i: usize, dev: kernel::net::driver::DeviceRef<End>) {
        let nic = self.nic(i);
        *nic.dev.lock() = Some(dev);
        nic.stopping.store(false, Relaxed);
        let mut st = nic.engine.lock();
        st.running = true;
        st.rekick = false;
    }

    /// Stops NIC `i`'s engine and waits until its last pass has finished;
    /// then lets go of the device. Process context.
    pub(crate) fn stop_engine(self: &Arc<Self>, i: usize) {
        let nic = self.nic(i);
        // A running pass starts nothing more and waits for no bus time.
        nic.stopping.store(true, Relaxed);
        nic.engine.lock().running = false;
        // A pass checks `running` when it ends and then clears `scheduled`.
        while nic.engine.lock().scheduled {
            fsleep(Delta::from_micros(500));
        }
        drop(nic.dev.lock().take());
        // Frames the other NIC holds for this one are lost on the wire now.
        if self.nic(1 - i).held_for_far.swap(false, Relaxed) {
            self.kick(1 - i);
        }
    }

    /// One pass of NIC `i`'s engine.
    fn pass(this: Arc<Self>, i: usize) {
        let nic = this.nic(i);
        {
            let mut st = nic.engine.lock();
            st.rekick = false;
            if !st.running {
                st.scheduled = false;
                return;
            }
        }
        let started = now_ns();
        let dev = nic.dev.lock().clone();
        let done = match &dev {
            Some(dev) => {
                let mut window = Window::new();
                // The device queues only when something was queued to them.
                let device_work = nic.device_work.swap(false, Ordering::Acquire);
                let mut done =
                    this.serve_held(i) + this.serve_tx(i, dev, &mut window) + this.serve_rx(i, dev, &mut window);
                if device_work {
                    done += this.serve_device_tx(i) + this.serve_commands(i, dev, &mut window);
                }
                this.land(i, dev, &mut window);
                done
            }
            None => 0,
        };
        if let Some(dev) = &dev {
            // Forwarding paths this NIC refused for want of room (its
            // transmit queue, memory or command queue) try again; no lock
            // is held here, so they may send from the call.
            dev.data().room_freed();
        }
        drop(dev);
        NicCounters::add(&nic.counters.engine_passes, 1);
        NicCounters::add(&nic.counters.engine_ns, now_ns().saturating_sub(started));
        let again = {
            let mut st = nic.engine.lock();
            let again = st.running && (done > 0 || st.rekick);
            if !again {
                st.scheduled = false;
            }
            again
        };
        if again {
            this.queue_pass(i);
        }
    }

    /// One transaction of `bytes` by NIC `i`, counted (with its bus time and
    /// its wait for the bus, as the bus counts them); returns when it ends on
    /// the NIC's bus (now, on no bus).
    pub(crate) fn dma(&self, i: usize, kind: Kind, bytes: u32) -> u64 {
        let nic = self.nic(i);
        let now = now_ns();
        let (start, end) = match &nic.bus {
            Some(bus) => bus.reserve(kind, u64::from(bytes), now, self.scale),
            None => (now, now),
        };
        nic.traffic.count(kind, u64::from(bytes), end - start, start - now);
        end
    }

    /// A PIO read of `bytes` by the CPU from NIC `i`, counted; returns when
    /// the bus answers (now, on no bus), or `ETIMEDOUT` (nothing reserved or
    /// counted) if that would be after `deadline`.
    pub(crate) fn pio_read(&self, i: usize, bytes: u32, deadline: u64) -> Result<u64> {
        let nic = self.nic(i);
        let now = now_ns();
        let (start, end) = match &nic.bus {
            Some(bus) => bus.reserve_pio_read(u64::from(bytes), now, self.scale, deadline).ok_or(ETIMEDOUT)?,
            None => (now, now),
        };
        nic.traffic.count(Kind::Pio, u64::from(bytes), end - start, start - now);
        Ok(end)
    }

    /// Frames already in device memory (self and peer transfers) onto the
    /// wire, each once its transfer has ended.
    fn serve_device_tx(self: &Arc<Self>, i: usize) -> usize {
        let nic = self.nic(i);
        let mut done = 0;
        while done < BATCH && !nic.stopping.load(Relaxed) {
            let Some(out) = nic.dev_tx.lock().pop() else { break };
            wait_until(out.not_before, &nic.stopping);
            NicCounters::add(&nic.counters.tx_packets, 1);
            NicCounters::add(&nic.counters.tx_bytes, u64::from(out.slot.len()));
            self.wire(i, out.slot);
            done += 1;
        }
        if done == BATCH {
            // There may be more: the next pass looks again.
            nic.note_device_work();
        }
        done
    }

    /// What forwarding paths asked of NIC `i`: claimed frames into skbs, and
    /// peer transfers.
    fn serve_commands(self: &Arc<Self>, i: usize, dev: &Device<End>, window: &mut Window) -> usize {
        let nic = self.nic(i);
        let mut done = 0;
        while !nic.stopping.load(Relaxed) {
            if done == BATCH || nic.completions.lock().room() <= WINDOW {
                // More may wait: a later pass (or the poll, once it has
                // taken completions) looks again.
                nic.note_device_work();
                break;
            }
            let Some(cmd) = nic.commands.lock().pop() else { break };
            done += 1;
            match cmd {
                Command::ToHost { slot, tag } => {
                    NicCounters::add(&nic.counters.fallbacks, 1);
                    self.to_host(i, dev, window, slot, Some(tag));
                }
                Command::Peer(job) => self.peer_out(i, dev, window, job),
            }
        }
        done
    }

    /// Source side of a peer transfer: the header write-back (if any), then
    /// one DMA of the frame into the room reserved in the other NIC, which
    /// transmits it once the transfer has ended.
    fn peer_out(self: &Arc<Self>, i: usize, dev: &Device<End>, window: &mut Window, job: PeerJob) {
        let nic = self.nic(i);
        let PeerJob { src, len, header, dst } = job;
        let Some(slot) = self.mem.slot_from_raw(src.raw()) else { return };
        if let Some(h) = &header {
            let h = h.as_slice();
            let _ = self.mem.with_range(&slot, 0, h.len(), |b| b.copy_from_slice(h));
            self.dma(i, Kind::HostToDevice, h.len() as u32);
        }
        // Through a bounce buffer: the two NICs' memories have locks of
        // their own, which are never held together.
        let mut bounce = KVec::new();
        let copied = bounce.resize(len as usize, 0u8, GFP_KERNEL).is_ok()
            && self.mem.with_range(&slot, 0, len as usize, |b| bounce.copy_from_slice(b)).is_ok();
        if !copied {
            // No host memory for the emulation's bounce: lost, counted.
            self.free(slot);
            NicCounters::add(&nic.counters.tx_dropped, 1);
            return;
        }
        let now = now_ns();
        let end = self.dma(i, Kind::Peer, len);
        let from = PeerSource {
            interconnect: nic.bus.as_ref().map_or(0, |b| b.interconnect()),
            ends_in_ns: end.saturating_sub(now),
        };
        let filled = dst.fill_and_transmit(from, &mut |b: &mut [u8]| {
            let n = b.len().min(bounce.len());
            b[..n].copy_from_slice(&bounce[..n]);
        });
        if filled.is_err() {
            NicCounters::add(&nic.counters.peer_gone, 1);
        } else {
            NicCounters::add(&nic.counters.peer_out, 1);
        }
        // The source's memory is free once the transfer has ended.
        self.fly(i, dev, window, InFlight { end, what: Transfer::PeerOut { slot } });
    }

    /// A frame in NIC `i`'s receive memory into an skb, for the poll: to the
    /// stack (`None`) or, after a claim, as the consumer asked (`Some`).
    fn to_host(self: &Arc<Self>, i: usize, dev: &Device<End>, window: &mut Window, slot: Slot, tag: Option<Option<u64>>) {
        let nic = self.nic(i);
        let len = slot.len();
        let mut skb = match SkBuff::alloc_for(dev, len, GFP_KERNEL) {
            Ok(skb) => skb,
            Err(_) => {
                self.free(slot);
                NicCounters::add(&nic.counters.rx_dropped, 1);
                return;
            }
        };
        // A checksum the sending host left to its NIC is passed on to this
        // host's stack as still to be computed (the wire cannot corrupt the
        // frame), unless receive offload is off: then it is computed here.
        let pending = slot.pending_checksum();
        let pass_on = pending.is_some() && dev.has_features(Features::RXCSUM);
        let mut ok = match skb.put(len) {
            Ok(buf) => {
                self.mem.with_bytes(&slot, |bytes| buf.copy_from_slice(bytes));
                match pending {
                    Some(req) if !pass_on => fill_checksum(buf, req).is_ok(),
                    _ => true,
                }
            }
            Err(_) => false,
        };
        if let (true, Some(req)) = (ok && pass_on, pending) {
            ok = skb.set_checksum_partial(req).is_ok();
        }
        let end = self.dma(i, Kind::DeviceToHost, len);
        self.fly(i, dev, window, InFlight { end, what: Transfer::Received { skb, slot, ok, tag } });
    }

    /// A frame for a forwarding path: it stays in device memory; in
    /// [`HeaderMode::Copy`] its header is DMA'd to host memory first.
    fn claimed(self: &Arc<Self>, i: usize, dev: &Device<End>, window: &mut Window, mut slot: Slot, mode: HeaderMode) {
        // A forwarding path sees the frame as it was on the wire: a checksum
        // the sending host left to its NIC is computed now.
        if let Some(req) = slot.pending_checksum() {
            let _ = self.mem.with_bytes(&slot, |bytes| fill_checksum(bytes, req));
            slot.set_pending_checksum(None);
        }
        let (header, end) = match mode {
            HeaderMode::InPlace => (None, now_ns()),
            HeaderMode::Copy(n) => {
                let n = usize::from(n).min(slot.len() as usize);
                let header = Header::filled(n, |h| {
                    let _ = self.mem.with_range(&slot, 0, n, |b| h.copy_from_slice(b));
                })
                .ok();
                (header, self.dma(i, Kind::DeviceToHost, n as u32))
            }
        };
        self.fly(i, dev, window, InFlight { end, what: Transfer::Claimed { slot, header } });
    }

    /// Frees what NIC `i` holds in device memory and has not handed on:
    /// frames arrived from the wire or waiting for it, and queued requests
    /// (the NIC is down or going).
    pub(crate) fn free_queued(self: &Arc<Self>, i: usize) {
        let nic = self.nic(i);
        loop {
            // Each ring's lock is released before the arena's is taken.
            let Some(slot) = nic.wire_in.lock().pop() else { break };
            self.mem.free(slot);
        }
        loop {
            let Some(out) = nic.dev_tx.lock().pop() else { break };
            self.mem.free(out.slot);
            NicCounters::add(&nic.counters.tx_dropped, 1);
        }
        loop {
            let Some(slot) = nic.held.lock().pop() else { break };
            self.mem.free(slot);
            NicCounters::add(&nic.counters.tx_dropped, 1);
        }
        nic.held_for_far.store(false, Relaxed);
        loop {
            let Some(cmd) = nic.commands.lock().pop() else { break };
            match cmd {
                Command::ToHost { slot, .. } => self.mem.free(slot),
                Command::Peer(job) => {
                    if let Some(slot) = self.mem.slot_from_raw(job.src.raw()) {
                        self.mem.free(slot);
                    }
                    // Dropping the job's reservation releases the room in
                    // the other NIC.
                }
            }
            NicCounters::add(&nic.counters.tx_dropped, 1);
        }
    }

    /// Host transmit ring to device memory (then, as each transfer
    /// completes, to the wire).
    fn serve_tx(self: &Arc<Self>, i: usize, dev: &Device<End>, window: &mut Window) -> usize {
        let nic = self.nic(i);
        let mut done = 0;
        let pool = Owner { nic: i, pool: Pool::Tx };
        while done < BATCH && !nic.stopping.load(Relaxed) {
            let Some(skb) = nic.tx.lock().pop() else { break };
            let len = skb.len();
            if !self.mem.can_ever_hold(pool, len) {
                // Larger than the whole transmit pool (a small `mem_kib` and
                // a large MTU): it would block the ring for good.
                drop(skb);
                NicCounters::add(&nic.counters.tx_too_big, 1);
                NicCounters::add(&nic.counters.tx_dropped, 1);
                done += 1;
                continue;
            }
            let Some(slot) = self.mem.alloc(pool, len) else {
                // Transmit memory is full: the descriptor stays in the ring
                // (the queue stops when the ring fills) until frames leave,
                // and freeing memory kicks this engine again.
                nic.tx_waits_for_memory.store(true, Relaxed);
                NicCounters::add(&nic.counters.tx_mem_full, 1);
                if let Err(skb) = nic.tx.lock().push_front(skb) {
                    drop(skb);
                    NicCounters::add(&nic.counters.tx_dropped, 1);
                }
                break;
            };
            let mut slot = slot;
            let ok = self.mem.with_bytes(&slot, |bytes| skb.copy_bits(0, bytes)).is_ok();
            // Checksum offload: the sum the stack left to the NIC is computed
            // only where the frame leaves the emulation's wire, if ever (see
            // `docs/pnic.md`); a request outside the frame drops it.
            let req = skb.checksum_request();
            let ok = ok && req.is_none_or(|r| checksum_field(r, len as usize).is_some());
            slot.set_pending_checksum(req);
            let end = self.dma(i, Kind::HostToDevice, len);
            self.fly(i, dev, window, InFlight { end, what: Transfer::Sent { skb, slot, ok } });
            done += 1;
        }
        done
    }

    /// The emulated wire: NIC `i`'s frame reaches the far NIC's receive
    /// memory at once (the wire itself is not modelled as a cost). If that
    /// memory is full, flow control holds the frame (and every later one,
    /// the wire keeps order) until the far end makes room; without flow
    /// control the frame is lost. Lost too if the far NIC is down.
    fn wire(self: &Arc<Self>, i: usize, slot: Slot) {
        let nic = self.nic(i);
        let slot = {
            let mut held = nic.held.lock();
            if held.is_empty() {
                slot
            } else {
                // `held` has room for every frame transmit memory can hold.
                let refused = held.push(slot).err();
                drop(held);
                if let Some(slot) = refused {
                    self.free(slot);
                    NicCounters::add(&nic.counters.tx_dropped, 1);
                }
                return;
            }
        };
        if let Err(slot) = self.onto_wire(i, slot) {
            NicCounters::add(&nic.counters.tx_paused, 1);
            let refused = nic.held.lock().push(slot).err();
            if let Some(slot) = refused {
                self.free(slot);
                NicCounters::add(&nic.counters.tx_dropped, 1);
            }
        }
    }

    /// Frames flow control held, onto the wire as the far end makes room.
    fn serve_held(self: &Arc<Self>, i: usize) -> usize {
        let nic = self.nic(i);
        let mut done = 0;
        while !nic.stopping.load(Relaxed) {
            let Some(slot) = nic.held.lock().pop() else { break };
            if let Err(slot) = self.onto_wire(i, slot) {
                // Still no room: back at the head; the far end kicks this
                // engine when it frees memory.
                let refused = nic.held.lock().push_front(slot).err();
                if let Some(slot) = refused {
                    self.free(slot);
                    NicCounters::add(&nic.counters.tx_dropped, 1);
                }
                break;
            }
            done += 1;
        }
        done
    }

    /// Moves NIC `i`'s frame into the far NIC's receive memory and queues it
    /// there. Gives the frame back if flow control holds it: the far end is
    /// up but its receive memory is full (it was asked first to kick this
    /// engine when it frees memory).
    fn onto_wire(self: &Arc<Self>, i: usize, slot: Slot) -> Result<(), Slot> {
        let j = 1 - i;
        let far: &Nic = self.nic(j);
        let rx = Owner { nic: j, pool: Pool::Rx };
        let slot = match self.mem.move_to(slot, rx) {
            Ok(slot) => slot,
            Err(slot) if self.flow_control && far.engine.lock().running => {
                // Asked before looking again, so memory freed in between
                // (under the arena's lock, which orders the two) is seen
                // either by this look or by the one freeing it.
                self.nic(i).held_for_far.store(true, Relaxed);
                self.mem.move_to(slot, rx)?
            }
            Err(slot) => {
                self.free(slot);
                NicCounters::add(&far.counters.rx_missed, 1);
                return Ok(());
            }
        };
        let refused = {
            // Checked and pushed under the far engine's lock: its `stop`
            // clears `running` under it before freeing what arrived, so no
            // frame lands in a stopped NIC.
            let st = far.engine.lock();
            if st.running {
                far.wire_in.lock().push(slot).err().map(|slot| (slot, &far.counters.rx_missed))
            } else {
                Some((slot, &self.nic(i).counters.tx_carrier))
            }
        };
        if let Some((slot, counter)) = refused {
            self.free(slot);
            NicCounters::add(counter, 1);
            return Ok(());
        }
        self.kick(j);
        Ok(())
    }

    /// Device memory to host memory, for the NAPI poll.
    fn serve_rx(self: &Arc<Self>, i: usize, dev: &Device<End>, window: &mut Window) -> usize {
        let nic = self.nic(i);
        let mut done = 0;
        while done < BATCH && !nic.stopping.load(Relaxed) {
            if nic.completions.lock().room() <= WINDOW {
                // The host has not taken what it has; its poll kicks us.
                break;
            }
            let Some(slot) = nic.wire_in.lock().pop() else { break };
            let len = slot.len();
            done += 1;
            // Longer than this end's MTU allows (the far end's MTU may be
            // larger): a real NIC drops it as a length error.
            if len > dev.mtu() + MAX_LINK_HEADER {
                self.free(slot);
                NicCounters::add(&nic.counters.rx_dropped, 1);
                continue;
            }
            match decode_claim(nic.claim.load(Relaxed)) {
                None => self.to_host(i, dev, window, slot, None),
                Some(mode) => self.claimed(i, dev, window, slot, mode),
            }
        }
        done
    }

    /// Adds a transfer to the window; if the window is full, first waits
    /// for the oldest to end and completes every transfer that has.
    fn fly(self: &Arc<Self>, i: usize, dev: &Device<End>, window: &mut Window, f: InFlight) {
        if window.is_full() {
            self.complete_due(i, dev, window);
        }
        if let Err(f) = window.push(f) {
            // Cannot happen (room was made above); completing it at once
            // loses nothing.
            wait_until(f.end, &self.nic(i).stopping);
            if self.complete(i, dev, f) {
                let _bh = self.nic(i).completions.lock();
                dev.data().schedule_poll();
            }
        }
    }

    /// Waits for the window's transfers to end and completes them.
    fn land(self: &Arc<Self>, i: usize, dev: &Device<End>, window: &mut Window) {
        while !window.is_empty() {
            self.complete_due(i, dev, window);
        }
    }

    /// Waits until the oldest transfer in the window has ended, then makes it
    /// and every other one that has ended visible, in order.
    fn complete_due(self: &Arc<Self>, i: usize, dev: &Device<End>, window: &mut Window) {
        let Some(oldest) = window.oldest_end() else { return };
        let stopping = &self.nic(i).stopping;
        wait_until(oldest, stopping);
        // A stopping NIC completes everything at once.
        let now = if stopping.load(Relaxed) { u64::MAX } else { now_ns() };
        let mut received = false;
        while window.oldest_end().is_some_and(|end| end <= now) {
            let Some(f) = window.pop() else { break };
            received |= self.complete(i, dev, f);
        }
        if received {
            // Raised with bottom halves off, the poll runs as soon as they
            // are on again, on this CPU, rather than in ksoftirqd later.
            let _bh = self.nic(i).completions.lock();
            dev.data().schedule_poll();
        }
    }

    /// Frees a slot, and kicks an engine whose frame to send was waiting for
    /// memory.
    pub(crate) fn free(self: &Arc<Self>, slot: Slot) {
        self.mem.free(slot);
        self.memory_freed();
    }

    /// Kicks the engines waiting for device memory: one whose frame to
    /// send found none, and one whose frames flow control holds for the
    /// far end. Call after freeing memory or moving a frame out of a
    /// receive pool.
    pub(crate) fn memory_freed(self: &Arc<Self>) {
        for n in 0..2 {
            let nic = self.nic(n);
            let waits = nic.tx_waits_for_memory.load(Relaxed) && nic.tx_waits_for_memory.swap(false, Relaxed);
            let holds = nic.held_for_far.load(Relaxed) && nic.held_for_far.swap(false, Relaxed);
            if waits || holds {
                self.kick(n);
            }
        }
    }

    /// Posts `c` for NIC `i`'s poll; returns whether it did (a full ring
    /// drops it, counted).
    fn post(self: &Arc<Self>, i: usize, c: Completion) -> bool {
        let nic = self.nic(i);
        let refused = nic.completions.lock().push(c).err();
        match refused {
            None => true,
            Some(c) => {
                if let Completion::Claimed { slot, .. } = c {
                    self.free(slot);
                }
                NicCounters::add(&nic.counters.rx_dropped, 1);
                false
            }
        }
    }

    /// Makes one transfer visible; returns whether it posted a received
    /// frame for the poll.
    fn complete(self: &Arc<Self>, i: usize, dev: &Device<End>, f: InFlight) -> bool {
        let nic = self.nic(i);
        match f.what {
            Transfer::Sent { skb, slot, ok } => {
                let len = slot.len();
                // The host may free the buffer now.
                skb.consume();
                {
                    // With bottom halves off, the stack's transmit softirq
                    // runs here when they are on again.
                    let ring = nic.tx.lock();
                    if dev.is_queue_stopped() && !ring.is_full() {
                        dev.wake_queue();
                    }
                }
                if !ok {
                    self.free(slot);
                    NicCounters::add(&nic.counters.tx_dropped, 1);
                    return false;
                }
                NicCounters::add(&nic.counters.tx_packets, 1);
                NicCounters::add(&nic.counters.tx_bytes, u64::from(len));
                self.wire(i, slot);
                false
            }
            Transfer::Received { skb, slot, ok, tag } => {
                self.free(slot);
                if !ok {
                    NicCounters::add(&nic.counters.rx_dropped, 1);
                    return false;
                }
                let c = match tag {
                    None => Completion::Rx(skb),
                    Some(tag) => Completion::Host(skb, tag),
                };
                self.post(i, c)
            }
            Transfer::Claimed { slot, header } => self.post(i, Completion::Claimed { slot, header }),
            Transfer::PeerOut { slot } => {
                self.free(slot);
                false
            }
        }
    }
}

/// Where the checksum field of `req` lies in a frame of `len` bytes, if it
/// lies inside it.
fn checksum_field(req: ChecksumRequest, len: usize) -> Option<usize> {
    let field = (req.start as usize).checked_add(req.field as usize)?;
    (field.checked_add(2)? <= len).then_some(field)
}

/// Computes the checksum `req` asks for over `frame` and stores it, as a
/// NIC with checksum offload does as it transmits (a UDP sum of zero is sent
/// as all ones, which means the same). `EINVAL` if the field is outside.
fn fill_checksum(frame: &mut [u8], req: ChecksumRequest) -> Result {
    let field = checksum_field(req, frame.len()).ok_or(EINVAL)?;
    let sum = PartialSum::of(&frame[req.start as usize..]).fold();
    let sum = if sum == [0, 0] { [0xff, 0xff] } else { sum };
    frame[field..field + 2].copy_from_slice(&sum);
    Ok(())
}

/// A transfer whose bytes have moved but which is not visible yet.
enum Transfer {
    /// A frame DMA'd from a host buffer into device memory.
    Sent { skb: SkBuff<Shared>, slot: Slot, ok: bool },
    /// A frame DMA'd from device memory into a host buffer: for the stack
    /// (`tag` `None`) or on a forwarding path's request.
    Received { skb: SkBuff<Writable>, slot: Slot, ok: bool, tag: Option<Option<u64>> },
    /// A claimed frame (and its header copy, once DMA'd).
    Claimed { slot: Slot, header: Option<Header> },
    /// A frame whose peer transfer out of this NIC is under way.
    PeerOut { slot: Slot },
}

struct InFlight {
    /// When the bus will have carried it.
    end: u64,
    what: Transfer,
}

/// Transfers an engine has started and not completed, oldest first. With
/// more than one, the next transaction is reserved while the previous one
/// is on the bus, so the bus is not left idle while the engine sleeps.
struct Window {
    flights: [Option<InFlight>; WINDOW],
    head: usize,
    len: usize,
}

impl Window {
    fn new() -> Self {
        Window { flights: [const { None }; WINDOW], head: 0, len: 0 }
    }

    fn is_full(&self) -> bool {
        self.len == WINDOW
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `f`; gives it back if the window is full.
    fn push(&mut self, f: InFlight) -> Result<(), InFlight> {
        if self.is_full() {
            return Err(f);
        }
        self.flights[(self.head + self.len) % WINDOW] = Some(f);
        self.len += 1;
        Ok(())
    }

    /// When the oldest transfer ends.
    fn oldest_end(&self) -> Option<u64> {
        if self.len == 0 { None } else { self.flights[self.head].as_ref().map(|f| f.end) }
    }

    fn pop(&mut self) -> Option<InFlight> {
        if self.len == 0 {
            return None;
        }
        let f = self.flights[self.head].take();
        self.head = (self.head + 1) % WINDOW;
        self.len -= 1;
        f
    }
}
