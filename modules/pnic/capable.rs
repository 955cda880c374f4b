// SPDX-License-Identifier: GPL-2.0

//! pnic's side of the peer-DMA capability (`kernel::net::peer_dma`): what a
//! forwarding path can ask of a NIC whose frames it claimed, and what each
//! request costs on the modelled bus.
//!
//! - In-place access is PIO: a read reserves the bus (arbitration, four
//!   bytes and the read latency) and the CPU spins until it ends, at most
//!   [`PIO_BUDGET_NS`] per call; a write is posted (the bus is reserved, the
//!   CPU goes on).
//! - A self transfer moves the frame's charge from the NIC's receive pool
//!   to its transmit pool and queues it for the wire: no DMA of the frame.
//! - A peer transfer is queued on the source NIC's engine, which DMAs the
//!   frame into room reserved in the destination's memory.
//! - The fallback is queued on the engine too, which DMAs the frame into an
//!   skb as for an ordinary receive.
//!
//! Requests reach the NIC only while its device is up; a NIC that is down
//! refuses them (`Refusal::Invalid`).

use crate::{
    bus::{now_ns, spin_until, Kind, PIO_BUDGET_NS},
    end::MAX_LINK_HEADER,
    mem::{Owner, Pool, Slot},
    nic::{encode_claim, Command, NicCounters, Outgoing},
    pair::PairShared,
};
use core::sync::atomic::Ordering::Relaxed;
use kernel::{
    net::peer_dma::{self, Header, HeaderMode, PeerDmaOps, PeerJob, PeerSource, Refusal},
    prelude::*,
    sync::Arc,
};

/// Bytes one PIO transaction moves.
const PIO_WORD: usize = 4;

/// The longest a peer transfer may say it takes on the source's side: a
/// destination does not hold its transmit longer on another driver's word.
const MAX_PEER_TRANSFER_NS: u64 = 1_000_000_000;

/// One NIC of a pair, as the capability reaches it.
pub(crate) struct Port {
    shared: Arc<PairShared>,
    index: usize,
}

impl Port {
    pub(crate) fn new(shared: Arc<PairShared>, index: usize) -> Self {
        Port { shared, index }
    }

    /// The pnic slot a capability slot names, if it is one of this pair's.
    fn slot(&self, slot: &peer_dma::Slot) -> Option<Slot> {
        self.shared.mem.slot_from_raw(slot.raw())
    }

    /// The largest frame the NIC sends now, or `None` while it is down.
    fn max_frame(&self) -> Option<u32> {
        self.shared.nic(self.index).dev.lock().as_ref().map(|dev| dev.mtu() + MAX_LINK_HEADER)
    }

    /// Queues a frame already in this NIC's transmit memory for the wire.
    fn queue_out(&self, out: Outgoing) -> Result<(), Outgoing> {
        let nic = self.shared.nic(self.index);
        nic.dev_tx.lock().push(out)?;
        nic.note_device_work();
        self.shared.kick(self.index);
        Ok(())
    }

    /// Queues the command `make` builds for the engine, if the NIC is up
    /// and has room; otherwise gives back what `make` would have taken.
    fn command<T>(&self, what: T, make: impl FnOnce(T) -> Command) -> Result<(), (Refusal, T)> {
        if self.max_frame().is_none() {
            return Err((Refusal::Invalid, what));
        }
        {
            let mut queue = self.shared.nic(self.index).commands.lock();
            if queue.is_full() {
                return Err((Refusal::Busy, what));
            }
            // Room was checked under the lock: the push cannot fail.
            let _ = queue.push(make(what));
        }
        self.shared.nic(self.index).note_device_work();
        self.shared.kick(self.index);
        Ok(())
    }
}

impl PeerDmaOps for Port {
    fn release(&self, slot: peer_dma::Slot) {
        if let Some(slot) = self.slot(&slot) {
            self.shared.free(slot);
        }
    }

    fn pio_read(&self, slot: &peer_dma::Slot, off: u32, out: &mut [u8]) -> Result {
        let slot = self.slot(slot).ok_or(EINVAL)?;
        // The budget is spin time: a CPU preempted, or an emulator stalled,
        // between two words has not been held by the bus meanwhile.
        let mut spun = 0u64;
        for (k, word) in out.chunks_mut(PIO_WORD).enumerate() {
            let now = now_ns();
            let deadline = now.saturating_add(PIO_BUDGET_NS.saturating_sub(spun));
            let end = self.shared.pio_read(self.index, word.len() as u32, deadline)?;
            spin_until(end);
            spun = spun.saturating_add(end.saturating_sub(now));
            let at = off + (k * PIO_WORD) as u32;
            self.shared.mem.with_range(&slot, at, word.len(), |b| word.copy_from_slice(b))?;
        }
        Ok(())
    }

    fn pio_write(&self, slot: &mut peer_dma::Slot, off: u32, bytes: &[u8]) -> Result {
        let slot = self.slot(slot).ok_or(EINVAL)?;
        self.shared.mem.with_range(&slot, off, bytes.len(), |b| b.copy_from_slice(bytes))?;
        // Posted: each word takes the bus, the CPU does not wait.
        for word in bytes.chunks(PIO_WORD) {
            self.shared.dma(self.index, Kind::Pio, word.len() as u32);
        }
        Ok(())
    }

    fn transmit_own(
        &self,
        raw: peer_dma::Slot,
        len: u32,
        header: Option<&Header>,
    ) -> Result<(), (Refusal, peer_dma::Slot)> {
        let Some(slot) = self.slot(&raw) else { return Err((Refusal::Invalid, raw)) };
        match self.max_frame() {
            Some(max) if len <= max => (),
            _ => return Err((Refusal::Invalid, raw)),
        }
        let nic = self.shared.nic(self.index);
        let mut queue = nic.dev_tx.lock();
        if queue.is_full() {
            return Err((Refusal::Busy, raw));
        }
        // The frame stays where it is; only its charge moves to the
        // transmit pool, so a full transmit pool refuses it.
        let slot = match self.shared.mem.move_to(slot, Owner { nic: self.index, pool: Pool::Tx }) {
            Ok(slot) => slot,
            Err(slot) => {
                // Freeing memory kicks the engine, whose pass wakes the
                // consumer waiting for room.
                nic.tx_waits_for_memory.store(true, Relaxed);
                return Err((Refusal::NoMemory, peer_dma::Slot::new(slot.into_raw())));
            }
        };
        let mut not_before = now_ns();
        if let Some(h) = header {
            // The header write-back: one host-to-device DMA, ordered on the
            // bus before the frame leaves.
            let _ = self.shared.mem.with_range(&slot, 0, h.as_slice().len(), |b| b.copy_from_slice(h.as_slice()));
            not_before = self.shared.dma(self.index, Kind::HostToDevice, h.as_slice().len() as u32);
        }
        if let Err(out) = queue.push(Outgoing { slot, not_before }) {
            // Cannot happen: room was checked under this lock.
            drop(queue);
            self.shared.free(out.slot);
            NicCounters::add(&nic.counters.tx_dropped, 1);
            return Ok(());
        }
        drop(queue);
        // The frame left the receive pool: the far end may be held for room.
        self.shared.memory_freed();
        NicCounters::add(&nic.counters.self_transfers, 1);
        nic.note_device_work();
        self.shared.kick(self.index);
        Ok(())
    }

    fn reserve(&self, len: u32) -> Result<peer_dma::Slot, Refusal> {
        match self.max_frame() {
            Some(max) if len <= max => (),
            _ => return Err(Refusal::Invalid),
        }
        let nic = self.shared.nic(self.index);
        if nic.dev_tx.lock().is_full() {
            return Err(Refusal::Busy);
        }
        match self.shared.mem.alloc(Owner { nic: self.index, pool: Pool::Tx }, len) {
            Some(slot) => Ok(peer_dma::Slot::new(slot.into_raw())),
            None => {
                // As in `transmit_own`: the next free kicks the engine.
                nic.tx_waits_for_memory.store(true, Relaxed);
                NicCounters::add(&nic.counters.tx_mem_full, 1);
                Err(Refusal::NoMemory)
            }
        }
    }

    fn fill_and_transmit(&self, raw: peer_dma::Slot, len: u32, from: PeerSource, fill: &mut dyn FnMut(&mut [u8])) {
        let nic = self.shared.nic(self.index);
        let Some(slot) = self.slot(&raw) else { return };
        let now = now_ns();
        let mut not_before = now.saturating_add(from.ends_in_ns.min(MAX_PEER_TRANSFER_NS));
        // A transfer from another bus also crosses this NIC's own.
        if let Some(bus) = &nic.bus {
            if bus.interconnect() != from.interconnect {
                let (start, end) = bus.reserve(Kind::Peer, u64::from(len), now, self.shared.scale);
                nic.traffic.count(Kind::Peer, u64::from(len), end - start, start - now);
                not_before = not_before.max(end);
            }
        }
        let _ = self.shared.mem.with_range(&slot, 0, len as usize, |b| fill(b));
        NicCounters::add(&nic.counters.peer_in, 1);
        if let Err(out) = self.queue_out(Outgoing { slot, not_before }) {
            // Room was checked at `reserve`; a burst since then loses it.
            self.shared.free(out.slot);
            NicCounters::add(&nic.counters.tx_dropped, 1);
        }
    }

    fn peer_transfer(&self, job: PeerJob) -> Result<(), (Refusal, PeerJob)> {
        self.command(job, Command::Peer)
    }

    fn to_skb(&self, raw: peer_dma::Slot, len: u32, tag: Option<u64>) -> Result<(), (Refusal, peer_dma::Slot)> {
        let Some(slot) = self.slot(&raw) else { return Err((Refusal::Invalid, raw)) };
        if slot.len() != len {
            return Err((Refusal::Invalid, raw));
        }
        self.command(slot, |slot| Command::ToHost { slot, tag })
            .map_err(|(why, slot)| (why, peer_dma::Slot::new(slot.into_raw())))
    }

    fn set_claimed(&self, mode: Option<HeaderMode>) {
        self.shared.nic(self.index).claim.store(encode_claim(mode), Relaxed);
    }
}

#[kunit_tests(pnic_capability)]
mod tests {
    //! The capability's contract, on two real pairs P (a, b) and Q (c, d) on
    //! one bus: a test consumer claims b, frames are sent on a, and each
    //! case checks what the bus and the NICs counted. The devices run at
    //! MTU 1000 with no address, so the stack itself sends nothing (no IPv6
    //! below 1280) and every counted transaction is the test's.
    use super::*;
    use crate::{
        bus::{Bus, BusParams},
        pair::{Pair, Settings},
    };
    use kernel::{
        net::{
            peer_dma::{CapRef, Claim, DevBuf, RxConsumer, RxCtx, RxFrame, SendError},
            rtnl,
            skb::{SkBuff, TxOutcome, Writable},
        },
        new_spinlock_bh,
        str::CString,
        sync::SpinLockBh,
        time::{delay::fsleep, Delta},
    };

    /// The ethertype of test frames (IEEE local experimental): the stack
    /// drops them.
    const ETHERTYPE: [u8; 2] = [0x88, 0xb5];

    /// Fails the case by returning an error (a failed `assert!` would end
    /// the case at once, leaving its pairs registered).
    macro_rules! check {
        ($cond:expr) => {
            if !$cond {
                pr_err!("check failed at line {}: {}\n", line!(), stringify!($cond));
                return Err(EINVAL);
            }
        };
    }

    macro_rules! check_eq {
        ($a:expr, $b:expr) => {{
            let (a, b) = (&$a, &$b);
            if a != b {
                pr_err!("check failed at line {}: {} == {} ({:?} != {:?})\n", line!(), stringify!($a),
                        stringify!($b), a, b);
                return Err(EINVAL);
            }
        }};
    }

    /// Keeps what a claimed device delivers, and counts the times it is
    /// told a device that refused it room may have some.
    #[pin_data]
    struct Catcher {
        #[pin]
        frames: SpinLockBh<KVec<(DevBuf, Option<Header>)>>,
        #[pin]
        skbs: SpinLockBh<KVec<(u64, KVec<u8>)>>,
        rooms: core::sync::atomic::AtomicU32,
    }

    impl RxConsumer for Catcher {
        fn receive(&self, _rx: &mut RxCtx<'_>, frame: RxFrame) {
            // Only the test's own frames (anything else is dropped, which
            // releases it). A failed push drops the frame too: the case
            // waiting for it then fails.
            let ours = match frame.header() {
                Some(h) => h.as_slice().get(12..14) == Some(&ETHERTYPE[..]),
                None => frame.buf.read_be16(12) == Ok(u16::from_be_bytes(ETHERTYPE)),
            };
            if ours {
                let _ = self.frames.lock().push(frame.into_parts(), GFP_ATOMIC);
            }
        }

        fn skb_ready(&self, _rx: &mut RxCtx<'_>, skb: SkBuff<Writable>, tag: u64) {
            let mut data = KVec::new();
            if data.extend_from_slice(skb.data(), GFP_ATOMIC).is_ok() {
                let _ = self.skbs.lock().push((tag, data), GFP_ATOMIC);
            }
        }

        fn room(&self) {
            self.rooms.fetch_add(1, Relaxed);
        }
    }

    struct Rig {
        p: Pair,
        q: Pair,
        bus: Arc<Bus>,
        caps: [CapRef; 4],
    }

    fn name(rig: &str, end: &str) -> Result<CString> {
        CString::try_from_fmt(fmt!("kc{}{}", rig, end))
    }

    /// Pairs P and Q on one bus, up at MTU 1000.
    fn rig(tag: &str) -> Result<Rig> {
        let bus = Arc::new(Bus::new(BusParams::default()), GFP_KERNEL)?;
        let settings = |x: &str, y: &str| -> Result<Settings> {
            Ok(Settings {
                names: [Some(name(tag, x)?), Some(name(tag, y)?)],
                buses: [Some(bus.clone()), Some(bus.clone())],
                ..Settings::default()
            })
        };
        let p = Pair::power_on(&name(tag, "p")?, &settings("a", "b")?, 1)?;
        let q = Pair::power_on(&name(tag, "q")?, &settings("c", "d")?, 1)?;
        {
            let rtnl = rtnl::lock();
            for dev in Iterator::chain(p.devices(), q.devices()) {
                dev.device().set_mtu(1000, &rtnl)?;
                dev.device().open(&rtnl)?;
            }
        }
        let cap = |pair: &Pair, i| pair.device(i).and_then(|d| CapRef::lookup(d)).ok_or(ENODEV);
        let caps = [cap(&p, 0)?, cap(&p, 1)?, cap(&q, 0)?, cap(&q, 1)?];
        Ok(Rig { p, q, bus, caps })
    }

    fn catcher() -> Result<Arc<Catcher>> {
        Arc::pin_init(
            pin_init!(Catcher {
                frames <- new_spinlock_bh!(KVec::new()),
                skbs <- new_spinlock_bh!(KVec::new()),
                rooms: core::sync::atomic::AtomicU32::new(0),
            }),
            GFP_KERNEL,
        )
    }

    fn claim(cap: &CapRef, mode: HeaderMode, c: &Arc<Catcher>) -> Result<Claim> {
        let consumer: Arc<dyn RxConsumer> = c.clone();
        cap.claim(mode, consumer)
    }

    /// The test frame of `len` bytes numbered `n`.
    fn frame(len: usize, n: u8) -> Result<KVec<u8>> {
        let mut f = KVec::new();
        f.extend_from_slice(&[0xff; 6], GFP_KERNEL)?;
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, n], GFP_KERNEL)?;
        f.extend_from_slice(&ETHERTYPE, GFP_KERNEL)?;
        while f.len() < len {
            let b = (f.len() as u8).wrapping_mul(7).wrapping_add(n);
            f.push(b, GFP_KERNEL)?;
        }
        Ok(f)
    }

    /// Sends `bytes` as a frame on `pair`'s end `i`. Until the link is
    /// active (the core attaches the qdisc a little after the carrier comes
    /// on) a frame is dropped as "congested": send again then.
    fn send_on(pair: &Pair, i: usize, bytes: &[u8]) -> Result {
        let dev = pair.device(i).ok_or(ENODEV)?;
        for _ in 0..2000 {
            let mut skb = SkBuff::alloc_for(dev, bytes.len() as u32, GFP_KERNEL)?;
            skb.put(bytes.len() as u32)?.copy_from_slice(bytes);
            if let TxOutcome::Queued = skb.transmit(dev)? {
                return Ok(());
            }
            fsleep(Delta::from_millis(1));
        }
        Err(ETIMEDOUT)
    }

    /// Waits until none of `pair`'s memory is in use: every frame sent,
    /// received or dropped has given its memory back.
    fn quiet(pair: &Pair) -> Result {
        let owners = [0, 1].map(|nic| [Pool::Rx, Pool::Tx].map(|pool| Owner { nic, pool }));
        wait_for(|| owners.iter().flatten().all(|&o| pair.shared().mem.pool(o).used == 0))
    }

    /// Waits up to 5 s for `done`.
    fn wait_for(mut done: impl FnMut() -> bool) -> Result {
        for _ in 0..5000 {
            if done() {
                return Ok(());
            }
            fsleep(Delta::from_millis(1));
        }
        Err(ETIMEDOUT)
    }

    /// The next frame the catcher got.
    fn next_frame(c: &Catcher) -> Result<(DevBuf, Option<Header>)> {
        let mut got = None;
        wait_for(|| {
            let mut frames = c.frames.lock();
            if frames.is_empty() {
                return false;
            }
            got = Some(frames.remove(0));
            true
        })?;
        got.ok_or(ETIMEDOUT)?.map_err(|_| EINVAL)
    }

    fn nic_kind(pair: &Pair, i: usize, kind: Kind) -> (u64, u64) {
        let c = &pair.shared().nic(i).traffic.0[kind as usize];
        (c.transactions.load(Relaxed), c.bytes.load(Relaxed))
    }

    fn bus_kind(bus: &Bus, kind: Kind) -> (u64, u64) {
        let c = &bus.traffic.0[kind as usize];
        (c.transactions.load(Relaxed), c.bytes.load(Relaxed))
    }

    fn rx_packets(pair: &Pair, i: usize) -> u64 {
        pair.shared().nic(i).counters.rx_packets.load(Relaxed)
    }

    #[test]
    fn a_self_transfer_moves_no_bytes_over_the_bus() -> Result {
        let r = rig("s")?;
        let c = catcher()?;
        let _claim = claim(&r.caps[1], HeaderMode::InPlace, &c)?;
        send_on(&r.p, 0, &frame(200, 1)?)?;
        let (buf, header) = next_frame(&c)?;
        check!(header.is_none());
        check_eq!(buf.len(), 200);
        let dma = [Kind::HostToDevice, Kind::DeviceToHost, Kind::Peer].map(|k| nic_kind(&r.p, 1, k));
        let at_a = rx_packets(&r.p, 0);
        check!(buf.send(None, &r.caps[1]).is_ok());
        // Back out of b, over the wire, received by a.
        wait_for(|| rx_packets(&r.p, 0) > at_a)?;
        check_eq!([Kind::HostToDevice, Kind::DeviceToHost, Kind::Peer].map(|k| nic_kind(&r.p, 1, k)), dma);
        check_eq!(r.p.shared().nic(1).counters.self_transfers.load(Relaxed), 1);
        // Every frame gave its memory back.
        quiet(&r.p)?;
        Ok(())
    }

    #[test]
    fn a_peer_transfer_is_one_transaction_of_the_frame_and_keeps_its_bytes() -> Result {
        let r = rig("p")?;
        let (cb, cd) = (catcher()?, catcher()?);
        let _b = claim(&r.caps[1], HeaderMode::InPlace, &cb)?;
        let _d = claim(&r.caps[3], HeaderMode::InPlace, &cd)?;
        let sent = frame(900, 2)?;
        send_on(&r.p, 0, &sent)?;
        let (buf, _) = next_frame(&cb)?;
        let bus_peer = bus_kind(&r.bus, Kind::Peer);
        check!(buf.send(None, &r.caps[2]).is_ok());
        // Out of b into c by one peer DMA, over Q's wire to d.
        let (got, _) = next_frame(&cd)?;
        check_eq!(nic_kind(&r.p, 1, Kind::Peer), (1, 900));
        // b and c share the bus: one transaction, counted once.
        check_eq!(bus_kind(&r.bus, Kind::Peer), (bus_peer.0 + 1, bus_peer.1 + 900));
        check_eq!(nic_kind(&r.q, 0, Kind::Peer), (0, 0));
        check_eq!(r.q.shared().nic(0).counters.peer_in.load(Relaxed), 1);
        // Read back in place at d: one PIO per 4 bytes, the same bytes.
        let pio = nic_kind(&r.q, 1, Kind::Pio);
        let mut back = KVec::new();
        back.resize(900, 0u8, GFP_KERNEL)?;
        check_eq!(got.read(0, &mut back), Ok(()));
        check_eq!(&back[..], &sent[..]);
        check_eq!(nic_kind(&r.q, 1, Kind::Pio), (pio.0 + 225, pio.1 + 900));
        // Out of range is refused, not a panic.
        check_eq!(got.read_u8(900), Err(ERANGE));
        drop(got);
        quiet(&r.p)?;
        quiet(&r.q)?;
        Ok(())
    }

    #[test]
    fn a_header_copy_is_one_dma_each_way_and_edits_reach_the_wire() -> Result {
        let r = rig("h")?;
        let (cb, cd) = (catcher()?, catcher()?);
        let _b = claim(&r.caps[1], HeaderMode::Copy(34), &cb)?;
        let _d = claim(&r.caps[3], HeaderMode::InPlace, &cd)?;
        let d2h = nic_kind(&r.p, 1, Kind::DeviceToHost);
        let sent = frame(600, 3)?;
        send_on(&r.p, 0, &sent)?;
        let (buf, header) = next_frame(&cb)?;
        let mut header = header.ok_or(EINVAL)?;
        check_eq!(header.as_slice(), &sent[..34]);
        check_eq!(nic_kind(&r.p, 1, Kind::DeviceToHost), (d2h.0 + 1, d2h.1 + 34));
        // A router's edit: a new source address.
        header.as_mut_slice()[6..12].copy_from_slice(&[0x02, 9, 9, 9, 9, 9]);
        let h2d = nic_kind(&r.p, 1, Kind::HostToDevice);
        check!(buf.send(Some(header.as_slice()), &r.caps[2]).is_ok());
        let (got, _) = next_frame(&cd)?;
        check_eq!(nic_kind(&r.p, 1, Kind::HostToDevice), (h2d.0 + 1, h2d.1 + 34));
        let mut src = [0u8; 6];
        got.read(6, &mut src)?;
        check_eq!(src, [0x02, 9, 9, 9, 9, 9]);
        check_eq!(got.read_be16(12)?, u16::from_be_bytes(ETHERTYPE));
        // A header longer than the frame is refused and the buffer returned.
        let mut long = KVec::new();
        long.resize(601, 0u8, GFP_KERNEL)?;
        check!(matches!(got.send(Some(&long), &r.caps[3]), Err(SendError::Invalid(_))));
        quiet(&r.p)?;
        quiet(&r.q)?;
        Ok(())
    }

    #[test]
    fn a_send_refused_for_want_of_memory_is_told_once_when_memory_frees() -> Result {
        let r = rig("w")?;
        let c = catcher()?;
        let _b = claim(&r.caps[1], HeaderMode::InPlace, &c)?;
        send_on(&r.p, 0, &frame(500, 8)?)?;
        let (buf, _) = next_frame(&c)?;
        // All of c's transmit memory taken, as by frames waiting to leave.
        let tx = Owner { nic: 0, pool: Pool::Tx };
        let mut taken = KVec::new();
        while let Some(slot) = r.q.shared().mem.alloc(tx, 1024) {
            taken.push(slot, GFP_KERNEL)?;
        }
        check!(!taken.is_empty());
        let buf = match buf.send(None, &r.caps[2]) {
            Err(SendError::NoMemory(buf)) => buf,
            other => {
                pr_err!("a send into full memory gave {:?}\n", other.err());
                return Err(EINVAL);
            }
        };
        check_eq!(c.rooms.load(Relaxed), 0);
        // Memory back: c's engine runs and tells b's consumer.
        let at_d = rx_packets(&r.q, 1);
        if let Some(slot) = taken.pop() {
            r.q.shared().free(slot);
        }
        wait_for(|| c.rooms.load(Relaxed) > 0)?;
        check!(buf.send(None, &r.caps[2]).is_ok());
        wait_for(|| rx_packets(&r.q, 1) > at_d)?;
        // Told once: c's passes for the frame that went did not tell again.
        fsleep(Delta::from_millis(20));
        check_eq!(c.rooms.load(Relaxed), 1);
        for slot in taken.drain_all() {
            r.q.shared().free(slot);
        }
        quiet(&r.p)?;
        quiet(&r.q)?;
        Ok(())
    }

    #[test]
    fn the_fallback_dmas_the_whole_frame_into_an_skb() -> Result {
        let r = rig("f")?;
        let c = catcher()?;
        let _claim = claim(&r.caps[1], HeaderMode::InPlace, &c)?;
        let sent = frame(700, 4)?;
        send_on(&r.p, 0, &sent)?;
        let (buf, _) = next_frame(&c)?;
        let d2h = nic_kind(&r.p, 1, Kind::DeviceToHost);
        check!(buf.to_skb(42).is_ok());
        let mut got = None;
        wait_for(|| {
            let mut skbs = c.skbs.lock();
            if skbs.is_empty() {
                return false;
            }
            got = Some(skbs.remove(0));
            true
        })?;
        let (tag, data) = got.ok_or(ETIMEDOUT)?.map_err(|_| EINVAL)?;
        check_eq!(tag, 42);
        check_eq!(&data[..], &sent[..]);
        check_eq!(nic_kind(&r.p, 1, Kind::DeviceToHost), (d2h.0 + 1, d2h.1 + 700));
        quiet(&r.p)?;
        Ok(())
    }

    #[test]
    fn a_device_that_goes_leaves_handles_that_fail_and_leak_nothing() -> Result {
        let r = rig("g")?;
        let c = catcher()?;
        let claim_b = claim(&r.caps[1], HeaderMode::InPlace, &c)?;
        // A second claim is refused.
        let other = catcher()?;
        check_eq!(claim(&r.caps[1], HeaderMode::InPlace, &other).err(), Some(EBUSY));
        send_on(&r.p, 0, &frame(100, 5)?)?;
        send_on(&r.p, 0, &frame(100, 6)?)?;
        let (first, _) = next_frame(&c)?;
        let (second, _) = next_frame(&c)?;
        let Rig { p, q, bus: _bus, caps } = r;
        // Q goes while a frame is on its way to it: the send finds it gone.
        drop(q);
        check!(!caps[2].is_live());
        check!(matches!(first.send(None, &caps[2]), Err(SendError::Gone)));
        // P goes while the consumer holds a frame and the claim.
        drop(p);
        check!(!caps[1].is_live());
        check_eq!(second.read_u8(0), Err(ENODEV));
        drop(second);
        drop(claim_b);
        Ok(())
    }

    #[test]
    fn an_unclaimed_device_is_an_ordinary_nic_again() -> Result {
        let r = rig("u")?;
        let c = catcher()?;
        let claim_b = claim(&r.caps[1], HeaderMode::InPlace, &c)?;
        check_eq!(r.caps[1].claimed_mode(), Some(HeaderMode::InPlace));
        drop(claim_b);
        check_eq!(r.caps[1].claimed_mode(), None);
        let d2h = nic_kind(&r.p, 1, Kind::DeviceToHost);
        let at_b = rx_packets(&r.p, 1);
        send_on(&r.p, 0, &frame(300, 7)?)?;
        wait_for(|| rx_packets(&r.p, 1) > at_b)?;
        check_eq!(nic_kind(&r.p, 1, Kind::DeviceToHost), (d2h.0 + 1, d2h.1 + 300));
        check!(c.frames.lock().is_empty());
        quiet(&r.p)?;
        Ok(())
    }
}
