// SPDX-License-Identifier: GPL-2.0

//! The conventional path: the packet is in host memory (an skb), as with
//! any driver. A receive handler sees each frame before the stack, forwards
//! what the fast path may, and passes everything else on untouched, so the
//! device's own personality (ARP, ping and TCP to the router) keeps working.
//! The paths through device memory end here too when the egress is not a
//! capable NIC.

use crate::{
    counters::Counters,
    decide::{self, Forward, ToStack, Verdict},
    ipv4::{self, Header, MAX_HEADER},
    Mode,
};
use kernel::{
    net::{
        device::NetDevice,
        ethernet::{EthHdr, EtherType, HLEN},
        rx_handler::{RxHandler, RxVerdict},
        skb::{SkBuff, State, TxOutcome, Writable},
    },
    prelude::*,
    sync::{rcu, Arc},
};

/// The receive handler of one attached device.
pub(crate) struct Router {
    pub(crate) counters: Arc<Counters>,
}

impl RxHandler for Router {
    fn receive(&self, skb: SkBuff, dev: &NetDevice) -> RxVerdict {
        if skb.protocol() != EtherType::IPV4 {
            self.counters.to_stack(ToStack::NotIpv4);
            return RxVerdict::Pass(skb);
        }
        if !skb.is_to_host() {
            self.counters.to_stack(ToStack::NotToUs);
            return RxVerdict::Pass(skb);
        }
        let guard = rcu::read_lock();
        match decide_skb(&guard, &skb, 0, dev) {
            Verdict::Forward(f) => {
                send(&self.counters, Mode::Conventional, skb, &f);
                RxVerdict::Consumed
            }
            Verdict::Stack(why) => {
                self.counters.to_stack(why);
                RxVerdict::Pass(skb)
            }
            Verdict::Malformed(why) => {
                // Never forwarded, and the stack would drop it too.
                self.counters.malformed(why);
                drop(skb);
                RxVerdict::Consumed
            }
        }
    }
}

/// Decides for the IPv4 packet `at` bytes into `skb`, received on `dev`.
pub(crate) fn decide_skb<'a, S: State>(guard: &'a rcu::Guard, skb: &SkBuff<S>, at: u32, dev: &NetDevice) -> Verdict<'a> {
    let mut bytes = [0u8; MAX_HEADER];
    let packet_len = skb.len().saturating_sub(at) as usize;
    let n = packet_len.min(MAX_HEADER);
    if skb.copy_bits(at, &mut bytes[..n]).is_err() {
        return Verdict::Malformed(ipv4::Malformed::Truncated);
    }
    let gso = skb.is_gso();
    decide::decide(guard, dev, &bytes[..n], packet_len, |h, mtu| {
        if gso { skb.segments_fit(mtu) } else { h.total_len as u32 <= mtu }
    })
}

/// Forwards `skb`, whose data starts at the IPv4 header `f` describes, out
/// of `f`'s egress, and counts it for `mode`. Consumes the buffer.
pub(crate) fn send<S: State>(counters: &Counters, mode: Mode, skb: SkBuff<S>, f: &Forward<'_>) {
    let eth = EthHdr { dst: f.hop.mac, src: f.src, ethertype: EtherType::IPV4 };
    let skb = match rewrite(skb.into_shared(), &f.header, &eth, f.hop.egress.ll_reserved_space()) {
        Ok(skb) => skb,
        Err(_) => {
            counters.no_memory();
            return;
        }
    };
    let len = skb.len();
    match skb.transmit(f.hop.egress) {
        // Congested is still queued.
        Ok(TxOutcome::Queued | TxOutcome::Congested) => counters.forwarded(mode, len),
        Err(_) => counters.egress_dropped(),
    }
}

/// The rewrite of a router: a buffer of our own, the TTL decremented (with
/// its checksum), link padding cut, and the egress link header in front.
/// The buffer is freed on failure.
fn rewrite(skb: SkBuff, h: &Header, eth: &EthHdr, headroom: u32) -> Result<SkBuff<Writable>> {
    let mut skb = skb.unshare(GFP_ATOMIC)?.into_writable(GFP_ATOMIC)?;
    skb.prepare_to_forward();
    skb.trim(h.total_len as u32)?;
    skb.pull_into_head(h.header_len as u32)?;
    let header = skb.data_mut().get_mut(..h.header_len).ok_or(EINVAL)?;
    ipv4::decrement_ttl(header).map_err(|()| EINVAL)?;
    eth.write(skb.push_with_room(HLEN as u32, headroom)?)?;
    Ok(skb)
}
