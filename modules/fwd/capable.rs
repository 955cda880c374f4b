// SPDX-License-Identifier: GPL-2.0

//! The paths through device memory (seed 000 §5), on a NIC that offers the
//! peer-DMA capability (`kernel::net::peer_dma`, pnic): the router claims
//! the NIC, and each received frame stays in the NIC's memory.
//!
//! - **in-place**: the link and IPv4 header fields are read one by one over
//!   the bus (PIO, the CPU waiting for each), and the rewritten ones written
//!   back the same way (posted);
//! - **header-copy**: the NIC copies the link and fixed IPv4 header to host
//!   memory in one DMA at receive; the router rewrites the copy, which goes
//!   back over the frame's start in one DMA before the frame moves.
//!
//! Then one peer DMA moves the frame into the egress NIC (none if the
//! egress is the ingress: a self transfer). A frame whose egress has no
//! room waits in the ingress NIC's memory, in the router's backlog, until
//! the egress tells it has room (`RxConsumer::room`). An egress that is not capable
//! gets the frame through host memory: the NIC DMAs it into an skb, and the
//! conventional path forwards that. Everything the fast path does not
//! forward goes to the stack as an ordinary receive.

use crate::{
    backlog::{Backlog, Held, BACKLOG},
    conventional,
    counters::Counters,
    decide::{self, Forward, ToStack, Verdict},
    ipv4::{self, MIN_HEADER},
    Mode,
};
use kernel::{
    net::{
        device::NetDevice,
        ethernet::{EtherType, ALEN, HLEN},
        peer_dma::{CapRef, DevBuf, RxConsumer, RxCtx, RxFrame, SendError},
        skb::{SkBuff, Writable},
    },
    new_spinlock_bh,
    prelude::*,
    sync::{aref::ARef, rcu, Arc, SpinLockBh},
};

/// Bytes the NIC copies to host memory at receive in header-copy mode: the
/// Ethernet header and the fixed IPv4 header.
pub(crate) const COPIED: usize = HLEN + MIN_HEADER;

/// Offset of the IPv4 TTL/protocol word and checksum (4 bytes, rewritten
/// together) in the frame.
const TTL_IN_FRAME: usize = HLEN + ipv4::TTL_OFFSET;

/// The consumer of one claimed NIC.
#[pin_data]
pub(crate) struct DeviceRouter {
    /// The claimed NIC's device: routes are looked up as received on it.
    ingress: ARef<NetDevice>,
    /// `InPlace` or `HeaderCopy`.
    mode: Mode,
    counters: Arc<Counters>,
    /// Frames waiting for room in their egress, oldest first. Held while a
    /// frame is sent, so that frames leave in the order they came.
    #[pin]
    backlog: SpinLockBh<Backlog>,
}

impl DeviceRouter {
    pub(crate) fn new(ingress: ARef<NetDevice>, mode: Mode, counters: Arc<Counters>) -> Result<Arc<Self>> {
        let backlog = Backlog::new(BACKLOG)?;
        Arc::pin_init(
            pin_init!(DeviceRouter {
                ingress,
                mode,
                counters,
                backlog <- new_spinlock_bh!(backlog, "fwd::DeviceRouter::backlog"),
            }),
            GFP_KERNEL,
        )
    }
}

impl RxConsumer for DeviceRouter {
    fn receive(&self, _rx: &mut RxCtx<'_>, frame: RxFrame) {
        let (buf, copy) = frame.into_parts();
        let mut head = [0u8; COPIED];
        let len = buf.len() as usize;
        let have = match &copy {
            Some(h) => {
                let n = h.as_slice().len().min(COPIED);
                head[..n].copy_from_slice(&h.as_slice()[..n]);
                n
            }
            None => match read_headers(&buf, &mut head) {
                Ok(n) => n,
                // The NIC is gone (nothing to release) or its bus did not
                // answer in time: the frame cannot be examined.
                Err(_) => {
                    self.counters.bus_timeout();
                    return;
                }
            },
        };
        if have < HLEN || head[12..14] != EtherType::IPV4.to_be_bytes() {
            self.counters.to_stack(ToStack::NotIpv4);
            self.to_stack(buf);
            return;
        }
        let to_us = self.ingress.mac_addr().is_some_and(|m| m.as_bytes()[..] == head[..ALEN]);
        if !to_us {
            self.counters.to_stack(ToStack::NotToUs);
            self.to_stack(buf);
            return;
        }
        let guard = rcu::read_lock();
        let ip = &head[HLEN..have];
        match decide::decide(&guard, &self.ingress, ip, len - HLEN, |h, mtu| h.total_len as u32 <= mtu) {
            Verdict::Forward(f) => self.forward(buf, copy.is_some(), &mut head, have, &f),
            Verdict::Stack(why) => {
                self.counters.to_stack(why);
                self.to_stack(buf);
            }
            Verdict::Malformed(why) => {
                self.counters.malformed(why);
                drop(buf);
            }
        }
    }

    /// A frame for an egress that is not capable, now in host memory
    /// (`DevBuf::to_skb`): the conventional path takes it from here. It is
    /// decided again, as the tables may have changed meanwhile.
    fn skb_ready(&self, rx: &mut RxCtx<'_>, mut skb: SkBuff<Writable>, _tag: u64) {
        let guard = rcu::read_lock();
        match conventional::decide_skb(&guard, &skb, HLEN as u32, &self.ingress) {
            Verdict::Forward(f) => {
                if skb.pull(HLEN as u32).is_err() {
                    self.counters.no_memory();
                    return;
                }
                conventional::send(&self.counters, Mode::Conventional, skb, &f);
            }
            Verdict::Stack(why) => {
                self.counters.to_stack(why);
                let _ = rx.to_stack(skb);
            }
            Verdict::Malformed(why) => self.counters.malformed(why),
        }
    }

    /// An egress that refused a frame for want of room may have some now.
    fn room(&self) {
        let mut backlog = self.backlog.lock();
        self.drain(&mut backlog);
    }
}

impl DeviceRouter {
    /// Rewrites the headers and sends the frame on: by peer DMA (or a self
    /// transfer) to a capable egress, else through host memory.
    fn forward(&self, buf: DevBuf, copied: bool, head: &mut [u8; COPIED], have: usize, f: &Forward<'_>) {
        let Some(egress) = CapRef::lookup(f.hop.egress) else {
            // One copy into host memory, then the conventional path.
            if buf.to_skb(0).is_err() {
                self.counters.egress_dropped();
            }
            return;
        };
        // The new link header and the new TTL word and checksum.
        head[..ALEN].copy_from_slice(f.hop.mac.as_bytes());
        head[ALEN..2 * ALEN].copy_from_slice(f.src.as_bytes());
        if ipv4::decrement_ttl(&mut head[HLEN..COPIED]).is_err() {
            // The decision checked TTL > 1.
            self.counters.to_stack(ToStack::TtlExpired);
            self.to_stack(buf);
            return;
        }
        let mut held = Held { buf, header: [0; COPIED], header_len: 0, egress, bus_before: 0 };
        if copied {
            held.header[..have].copy_from_slice(&head[..have]);
            // At most `COPIED` (34).
            held.header_len = have as u8;
            // The copy the NIC made at receive.
            held.bus_before = have as u32;
        } else {
            // What `read_headers` read (destination, ethertype, IPv4
            // header) and the two writes below (addresses, TTL word).
            let (read, written) = (ALEN + 2 + have.saturating_sub(HLEN), 2 * ALEN + 4);
            held.bus_before = (read + written) as u32;
            // Two posted writes over the bus: the addresses, then the TTL
            // word with the checksum.
            let written = held.buf.write(0, &head[..2 * ALEN]).and_then(|()| {
                held.buf.write(TTL_IN_FRAME as u32, &head[TTL_IN_FRAME..TTL_IN_FRAME + 4])
            });
            if written.is_err() {
                self.counters.egress_dropped();
                return;
            }
        }
        let mut backlog = self.backlog.lock();
        // Frames that wait go first; this one waits behind them.
        self.drain(&mut backlog);
        if !backlog.is_empty() {
            self.hold(&mut backlog, held, false);
            return;
        }
        if let Some(refused) = self.send(held) {
            self.hold(&mut backlog, refused, false);
        }
    }

    /// Sends a rewritten frame; gives it back if the egress has no room now
    /// (the capability then tells [`RxConsumer::room`] when it may have).
    fn send(&self, held: Held) -> Option<Held> {
        let Held { buf, header, header_len, egress, bus_before } = held;
        let len = buf.len();
        let copy = (header_len > 0).then(|| &header[..usize::from(header_len)]);
        // The header write-back, and the peer transfer unless the frame
        // stays in the same NIC (a self transfer moves no bytes).
        let peer = if buf.is_on(&egress) { 0 } else { len };
        let bus = bus_before + u32::from(header_len) + peer;
        match buf.send(copy, &egress) {
            Ok(()) => self.counters.forwarded_over_bus(self.mode, len, bus),
            Err(SendError::Busy(buf) | SendError::NoMemory(buf)) => {
                return Some(Held { buf, header, header_len, egress, bus_before });
            }
            Err(SendError::Invalid(_) | SendError::Gone) => self.counters.egress_dropped(),
        }
        None
    }

    /// Sends held frames, oldest first, until one is refused again.
    fn drain(&self, backlog: &mut Backlog) {
        while let Some(held) = backlog.pop() {
            if let Some(refused) = self.send(held) {
                self.hold(backlog, refused, true);
                return;
            }
        }
    }

    /// Keeps a refused frame in the ingress NIC's memory, first (`again`)
    /// or last in the backlog; a full backlog drops it (releasing its
    /// memory), counted.
    fn hold(&self, backlog: &mut Backlog, held: Held, again: bool) {
        let kept = if again { backlog.push_front(held) } else { backlog.push(held) };
        match kept {
            Ok(()) if !again => self.counters.held(),
            Ok(()) => (),
            Err(_dropped) => self.counters.backlog_full(),
        }
    }

    /// Hands the frame to the stack as an ordinary receive.
    fn to_stack(&self, buf: DevBuf) {
        if buf.to_stack().is_err() {
            self.counters.no_memory();
        }
    }
}

/// In place: reads the destination address, the ethertype and, for IPv4,
/// the fixed IPv4 header over the bus into `head`; returns how many bytes
/// of it are valid (the frame may be shorter).
fn read_headers(buf: &DevBuf, head: &mut [u8; COPIED]) -> Result<usize> {
    let len = buf.len() as usize;
    if len < HLEN {
        return Ok(0);
    }
    buf.read(0, &mut head[..ALEN])?;
    buf.read(12, &mut head[12..HLEN])?;
    if head[12..HLEN] != EtherType::IPV4.to_be_bytes() {
        return Ok(HLEN);
    }
    let n = len.min(COPIED);
    buf.read(HLEN as u32, &mut head[HLEN..n])?;
    Ok(n)
}
