// SPDX-License-Identifier: GPL-2.0

//! A configured endpoint: its shared area, the receive pool and event
//! producer (fed from the receive handler in softirq), and the request
//! consumer (the doorbell, or the receive path when the pool runs dry).
//!
//! Buffers are owned by the application or by the kernel; the kernel owns
//! exactly the buffers in its receive pool, and a bitmap says which those
//! are, so a refill of a buffer already pooled, or a send from one, is
//! refused rather than handing one buffer out twice.

use crate::{counters::Counters, rings::Shared};
use core::sync::atomic::{fence, Ordering};
use kernel::{
    alloc::{flags::GFP_ATOMIC, ring::Ring},
    net::{
        bqi::{self, DescError, EndpointConfig, Event, EventKind, Request, Stat, Template},
        device::NetDevice,
        ethernet::{self, EtherType},
        skb::{SkBuff, State},
    },
    new_spinlock_bh,
    prelude::*,
    static_lock_class,
    sync::{aref::ARef, poll::PollCondVarBox, Arc, SpinLockBh},
};

/// Receive side: what softirq touches for every frame.
struct Rx {
    /// Buffer indices the kernel may fill, oldest refill first. Never more
    /// than `buf_count` (a buffer is pooled at most once, by the bitmap).
    pool: Ring<u32>,
    /// Bit `i`: buffer `i` is in the pool.
    pooled: KVec<u64>,
    /// Next event position.
    evt_head: u32,
    ended: bool,
}

impl Rx {
    fn is_pooled(&self, buffer: u32) -> bool {
        self.pooled.get(buffer as usize / 64).is_some_and(|w| w & (1 << (buffer % 64)) != 0)
    }

    fn set_pooled(&mut self, buffer: u32, on: bool) {
        if let Some(w) = self.pooled.get_mut(buffer as usize / 64) {
            if on {
                *w |= 1 << (buffer % 64);
            } else {
                *w &= !(1 << (buffer % 64));
            }
        }
    }

    /// Pools `buffer`; false if it is pooled already.
    fn refill(&mut self, buffer: u32) -> bool {
        if self.is_pooled(buffer) || self.pool.push(buffer).is_err() {
            return false;
        }
        self.set_pooled(buffer, true);
        true
    }

    fn take_buffer(&mut self) -> Option<u32> {
        let b = self.pool.pop()?;
        self.set_pooled(b, false);
        Some(b)
    }
}

/// Who takes requests.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Taker {
    /// The doorbell (`IOC_KICK`), process context: takes everything, up to
    /// [`DOORBELL_QUEUES`] queues' worth, and runs the need-wakeup protocol.
    Doorbell,
    /// The receive path, when a frame found the pool empty: takes at most
    /// [`RECEIVE_BUDGET`] requests if the doorbell is not taking them
    /// already, and leaves the need-wakeup flag set, so that whatever it
    /// leaves still rings the bell.
    Receive,
}

/// Queues' worth of requests one doorbell takes before it asks to be rung
/// again: work with bottom halves off stays bounded however fast the
/// application produces.
const DOORBELL_QUEUES: u32 = 4;
/// Requests the receive path takes per empty-pool frame.
const RECEIVE_BUDGET: u32 = 64;

/// Request side: serialises the doorbell and the receive path's refills.
struct Tx {
    /// Next request position to take.
    req_tail: u32,
    /// Send descriptors finished so far (wrapping).
    sends_done: u32,
    /// The device, until it goes away.
    dev: Option<ARef<NetDevice>>,
}

/// An endpoint after configuration (sealed: nothing here changes but its
/// queues and counters).
#[pin_data]
pub(crate) struct Endpoint {
    pub(crate) shared: Shared,
    pub(crate) template: Template,
    pub(crate) config: EndpointConfig,
    /// Largest frame the device sends or receives (MTU plus link header).
    pub(crate) max_frame: u32,
    #[pin]
    rx: SpinLockBh<Rx>,
    #[pin]
    tx: SpinLockBh<Tx>,
    pub(crate) counters: Counters,
    /// Poll readiness; boxed so that the last reference may go in softirq.
    pub(crate) readable: PollCondVarBox,
}

impl Endpoint {
    pub(crate) fn new(
        shared: Shared,
        template: Template,
        max_frame: u32,
        dev: ARef<NetDevice>,
    ) -> Result<Arc<Self>> {
        let count = shared.layout.buf_count() as usize;
        let pool = Ring::new(count)?;
        let mut pooled = KVec::with_capacity(count.div_ceil(64), GFP_KERNEL)?;
        pooled.resize(count.div_ceil(64), 0u64, GFP_KERNEL)?;
        let readable = PollCondVarBox::new(c"bqi_events", static_lock_class!())?;
        let config = template.config;
        Arc::pin_init(
            try_pin_init!(Endpoint {
                shared,
                template,
                config,
                max_frame,
                rx <- new_spinlock_bh!(Rx { pool, pooled, evt_head: 0, ended: false }),
                tx <- new_spinlock_bh!(Tx { req_tail: 0, sends_done: 0, dev: Some(dev) }),
                counters: Counters::default(),
                readable,
            }),
            GFP_KERNEL,
        )
    }

    /// The endpoint's own buffer queue index.
    pub(crate) fn bqi(&self) -> u16 {
        self.template.bqi
    }

    /// Posts `event` if the event queue has room; counts it lost otherwise.
    /// Writes `event` at the next position, which the caller found free.
    fn post_in_room(shared: &Shared, rx: &mut Rx, event: &Event) {
        shared.post(rx.evt_head, event);
        rx.evt_head = rx.evt_head.wrapping_add(1);
    }

    fn post(&self, rx: &mut Rx, event: &Event) -> bool {
        let entries = self.shared.layout.evt_entries();
        match bqi::pending(rx.evt_head, self.shared.evt_tail(), entries) {
            Some(used) if used < entries => {
                Self::post_in_room(&self.shared, rx, event);
                true
            }
            Some(_) => {
                self.counters.bump(Stat::EventsLost);
                false
            }
            None => {
                // The application's tail is garbage: nothing can be posted.
                self.counters.bump(Stat::BadRequests);
                self.counters.bump(Stat::EventsLost);
                false
            }
        }
    }

    /// Puts a received frame into a pooled buffer and posts its event.
    /// Softirq (the device's receive handler). The frame is consumed.
    pub(crate) fn deliver(&self, skb: SkBuff) {
        // A GSO buffer (a local TSO send, or a device's GRO) larger than a
        // packet buffer goes as the frames it stands for.
        if skb.is_gso() && skb.len() as usize + ethernet::HLEN > self.shared.layout.buf_size() as usize {
            match skb.unshare(GFP_ATOMIC).and_then(|skb| skb.segment_received()) {
                Ok(segments) => segments.for_each(|s| self.deliver_one(s)),
                Err(_) => self.counters.bump(Stat::DroppedTooBig),
            }
            return;
        }
        self.deliver_one(skb);
    }

    /// Delivers one frame (consumed).
    fn deliver_one<S: State>(&self, skb: SkBuff<S>) {
        let mut delivered = self.try_deliver(&skb);
        if delivered == Err(Stat::DroppedNoBuffer) && self.take_requests(Taker::Receive).is_ok() {
            // The pool ran dry: refills may be waiting in the request queue.
            delivered = self.try_deliver(&skb);
        }
        match delivered {
            Ok(()) => {
                self.counters.bump(Stat::Delivered);
                skb.consume();
                self.readable.notify_all();
            }
            Err(why) => self.counters.bump(why),
        }
    }

    fn try_deliver<S: State>(&self, skb: &SkBuff<S>) -> Result<(), Stat> {
        let mut rx = self.rx.lock();
        if rx.ended {
            return Err(Stat::DroppedRingFull);
        }
        let entries = self.shared.layout.evt_entries();
        match bqi::pending(rx.evt_head, self.shared.evt_tail(), entries) {
            Some(used) if used < entries => (),
            Some(_) => return Err(Stat::DroppedRingFull),
            None => {
                // The application's event tail is garbage: the frame is
                // dropped (as for a full queue) and the misuse counted.
                self.counters.bump(Stat::BadRequests);
                return Err(Stat::DroppedRingFull);
            }
        }
        let buffer = rx.take_buffer().ok_or(Stat::DroppedNoBuffer)?;
        let copied = self.shared.layout.buffer(buffer).ok_or(Stat::DroppedTooBig).and_then(|at| {
            // Packet buffers lie after the control page and the queues (the
            // layout); the kernel uses `SharedArea::word` only on those.
            // SAFETY: So no atomic access overlaps this buffer during the copy.
            unsafe { skb.copy_frame_to_area(&self.shared.area, at as usize, self.shared.layout.buf_size() as usize) }
                .map_err(|_| Stat::DroppedTooBig)
        });
        let len = match copied {
            Ok(len) => len,
            Err(why) => {
                // The buffer goes back to the pool.
                rx.refill(buffer);
                return Err(why);
            }
        };
        let code = if skb.checksum_trusted() { bqi::RX_CHECKSUM_TRUSTED } else { 0 };
        let event = Event { kind: EventKind::Received, code, buffer, value: len as u32 };
        // Room was checked above, under the same lock: not again.
        Self::post_in_room(&self.shared, &mut rx, &event);
        Ok(())
    }

    /// Whether events wait for the application, and whether it has ended.
    pub(crate) fn readiness(&self) -> (bool, bool) {
        let rx = self.rx.lock();
        (rx.evt_head != self.shared.evt_tail(), rx.ended)
    }

    /// Ends the endpoint: its device is going away. Drops the device
    /// reference, tells the application, wakes pollers.
    pub(crate) fn end(&self) {
        let dev = self.tx.lock().dev.take();
        {
            let mut rx = self.rx.lock();
            if !rx.ended {
                rx.ended = true;
                self.shared.set_flag(bqi::FLAG_ENDED, true);
                self.post(&mut rx, &Event { kind: EventKind::Ended, code: 0, buffer: 0, value: 0 });
            }
        }
        drop(dev);
        self.readable.notify_all();
    }

    /// Takes pending requests, for the doorbell or for the receive path
    /// (see [`Taker`]). Returns how many were taken. `ENODEV` once the
    /// endpoint has ended; `EINVAL` if the application's request head is
    /// garbage (an error event says so too); `EAGAIN` if the doorbell's
    /// budget ran out with requests left (call again); `EBUSY` if the
    /// receive path found the doorbell taking requests.
    pub(crate) fn take_requests(&self, taker: Taker) -> Result<u32> {
        let mut tx = match taker {
            Taker::Doorbell => self.tx.lock(),
            Taker::Receive => self.tx.try_lock().ok_or(EBUSY)?,
        };
        let dev = tx.dev.clone().ok_or(ENODEV)?;
        let entries = self.shared.layout.req_entries();
        let mut budget = match taker {
            Taker::Doorbell => entries.saturating_mul(DOORBELL_QUEUES),
            Taker::Receive => RECEIVE_BUDGET,
        };
        let mut taken = 0u32;
        let mut events = false;
        let result = loop {
            if taker == Taker::Doorbell {
                self.shared.set_flag(bqi::FLAG_NEED_WAKEUP, false);
            }
            let head = self.shared.req_head();
            let Some(n) = bqi::pending(head, tx.req_tail, entries) else {
                self.counters.bump(Stat::BadRequests);
                let event = Event { kind: EventKind::BadIndex, code: 1, buffer: 0, value: head };
                self.post(&mut self.rx.lock(), &event);
                events = true;
                break Err(EINVAL);
            };
            let batch = n.min(budget);
            for _ in 0..batch {
                let position = tx.req_tail;
                events |= self.take_one(&mut tx, &dev, position);
                tx.req_tail = position.wrapping_add(1);
            }
            budget -= batch;
            taken = taken.wrapping_add(batch);
            self.shared.set_req_tail(tx.req_tail);
            self.shared.set_sends_done(tx.sends_done);
            if taker == Taker::Receive {
                // The flag was never cleared: the application rings for
                // whatever this left.
                break Ok(taken);
            }
            // Stop taking only after saying so and looking once more, so a
            // request stored meanwhile is either seen here or rings the bell.
            self.shared.set_flag(bqi::FLAG_NEED_WAKEUP, true);
            fence(Ordering::SeqCst);
            if self.shared.req_head() == tx.req_tail {
                break Ok(taken);
            }
            if budget == 0 {
                // A producer outpacing the doorbell: bounded work with bottom
                // halves off; the caller rings again.
                break Err(EAGAIN);
            }
        };
        if taker == Taker::Doorbell {
            self.shared.set_flag(bqi::FLAG_NEED_WAKEUP, true);
        }
        drop(tx);
        if events {
            self.readable.notify_all();
        }
        result
    }

    /// Takes the request at `position`; returns whether it posted an event.
    fn take_one(&self, tx: &mut Tx, dev: &NetDevice, position: u32) -> bool {
        let refused = |code: DescError| Event { kind: EventKind::BadRequest, code: code as u16, buffer: 0, value: position };
        let raw = self.shared.request(position);
        let request = match Request::parse(&raw, &self.shared.layout) {
            Ok(r) => r,
            Err(e) => {
                if Request::claims_send(&raw) {
                    // A malformed send is finished with too (ABI: sends done).
                    tx.sends_done = tx.sends_done.wrapping_add(1);
                }
                self.counters.bump(Stat::BadRequests);
                return self.post(&mut self.rx.lock(), &refused(e));
            }
        };
        match request {
            Request::Refill { buffer } => {
                let mut rx = self.rx.lock();
                if rx.refill(buffer) {
                    return false;
                }
                self.counters.bump(Stat::BadRequests);
                self.post(&mut rx, &refused(DescError::NotOwned))
            }
            Request::Send { buffer, len, cookie } => {
                tx.sends_done = tx.sends_done.wrapping_add(1);
                if self.rx.lock().is_pooled(buffer) {
                    self.counters.bump(Stat::BadRequests);
                    return self.post(&mut self.rx.lock(), &refused(DescError::NotOwned));
                }
                match self.send(dev, buffer, len) {
                    Ok(()) => false,
                    Err(reject) => {
                        self.counters.bump(Stat::TemplateRejects);
                        let event = Event { kind: EventKind::SendRefused, code: reject as u16, buffer, value: cookie };
                        self.post(&mut self.rx.lock(), &event)
                    }
                }
            }
        }
    }

    /// Copies the frame out of the shared area, checks the copy against the
    /// template, and sends it. A template refusal is returned; a device that
    /// does not take the frame is counted.
    fn send(&self, dev: &NetDevice, buffer: u32, len: u32) -> Result<(), bqi::Reject> {
        let Some(at) = self.shared.layout.buffer(buffer) else {
            return Err(bqi::Reject::Length);
        };
        let mut skb = match SkBuff::alloc_for(dev, len, GFP_ATOMIC) {
            Ok(s) => s,
            Err(_) => {
                self.counters.bump(Stat::SendErrors);
                return Ok(());
            }
        };
        // Packet buffers lie after the control page and the queues (the
        // layout); the kernel uses `SharedArea::word` only on those.
        // SAFETY: So no atomic write overlaps this buffer during the copy.
        if unsafe { skb.put_from_area(&self.shared.area, at as usize, len) }.is_err() {
            self.counters.bump(Stat::SendErrors);
            return Ok(());
        }
        // The copy, not the shared buffer, is checked and sent; against the
        // device's address and MTU as they are now.
        let mut template = self.template;
        if let Some(mac) = dev.mac_addr() {
            template.src_mac = mac.0;
        }
        let max_frame = dev.mtu().saturating_add(bqi::ETH_HEADER_LEN as u32);
        template.check(skb.data(), max_frame as usize)?;
        // At least an Ethernet header: the template checked it.
        if let Some(&[hi, lo]) = skb.data().get(12..14) {
            skb.set_protocol(EtherType(u16::from_be_bytes([hi, lo])));
        }
        match skb.transmit(dev) {
            Ok(_) => self.counters.bump(Stat::Sent),
            Err(_) => self.counters.bump(Stat::SendErrors),
        }
        Ok(())
    }
}
