// SPDX-License-Identifier: GPL-2.0

//! The forwarding decision: which packets the fast path forwards, and which
//! it leaves to the stack (and why). The rule is to forward only what the
//! stack would forward unchanged apart from the TTL and the link header;
//! everything else goes to the stack, which does what Linux does (ICMP
//! errors, fragmentation, ARP, local delivery).

use crate::ipv4::{Header, Malformed, MIN_HEADER};
use kernel::{
    net::{
        device::NetDevice,
        ethernet::MacAddr,
        route::{self, Ipv4Route, NextHop},
    },
    prelude::*,
    sync::rcu,
};

/// Why a packet went to the stack instead of the fast path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ToStack {
    /// Not IPv4 (ARP, IPv6, anything else).
    NotIpv4,
    /// Sent to a link-layer group or broadcast, or to another host's MAC.
    NotToUs,
    /// Carries IP options.
    Options,
    /// A fragment.
    Fragment,
    /// TTL 1 or 0: the stack answers with ICMP time exceeded.
    TtlExpired,
    /// A multicast, broadcast, zero or loopback destination address.
    SpecialAddress,
    /// For this host.
    Local,
    /// No unicast route (none, or a broadcast, blackhole or unreachable one).
    NoRoute,
    /// Forwarding is off on the ingress device.
    ForwardingOff,
    /// Larger than the egress MTU: the stack fragments it or answers with
    /// ICMP fragmentation needed.
    TooBig,
    /// The next hop's link address is unknown: the stack resolves it.
    NoNeighbour,
    /// A route the fast path does not handle (tunnel, IPv6 next hop).
    Unsupported,
}

impl ToStack {
    /// Every reason, in the order counters list them.
    pub(crate) const ALL: [ToStack; 12] = [
        Self::NotIpv4,
        Self::NotToUs,
        Self::Options,
        Self::Fragment,
        Self::TtlExpired,
        Self::SpecialAddress,
        Self::Local,
        Self::NoRoute,
        Self::ForwardingOff,
        Self::TooBig,
        Self::NoNeighbour,
        Self::Unsupported,
    ];

    /// The counter's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::NotIpv4 => "not_ipv4",
            Self::NotToUs => "not_to_us",
            Self::Options => "options",
            Self::Fragment => "fragment",
            Self::TtlExpired => "ttl_expired",
            Self::SpecialAddress => "special_address",
            Self::Local => "local",
            Self::NoRoute => "no_route",
            Self::ForwardingOff => "forwarding_off",
            Self::TooBig => "too_big",
            Self::NoNeighbour => "no_neighbour",
            Self::Unsupported => "unsupported",
        }
    }
}

/// A packet the fast path forwards: its header, where it goes, and the
/// egress device's own address (the new link source).
pub(crate) struct Forward<'a> {
    pub(crate) header: Header,
    pub(crate) hop: NextHop<'a>,
    pub(crate) src: MacAddr,
}

/// The decision for one IPv4 packet.
pub(crate) enum Verdict<'a> {
    Forward(Forward<'a>),
    Stack(ToStack),
    Malformed(Malformed),
}

/// Decides for the IPv4 packet received on `ingress` whose header starts
/// `ip` (which may hold only the fixed 20 bytes: a header with options is
/// the stack's) and which has `packet_len` bytes in the frame. `fits(h,
/// mtu)` says whether it fits the egress MTU. The answer holds for the read
/// section `guard`.
pub(crate) fn decide<'a>(
    guard: &'a rcu::Guard,
    ingress: &NetDevice,
    ip: &[u8],
    packet_len: usize,
    fits: impl FnOnce(&Header, u32) -> bool,
) -> Verdict<'a> {
    // Options: the stack validates and handles them (the paths through
    // device memory copy or read only the fixed part).
    if let Some(&b) = ip.first() {
        if b >> 4 == 4 && usize::from(b & 0x0f) * 4 > MIN_HEADER && usize::from(b & 0x0f) * 4 > ip.len() {
            return Verdict::Stack(ToStack::Options);
        }
    }
    let h = match Header::parse(ip, packet_len) {
        Ok(h) => h,
        Err(why) => return Verdict::Malformed(why),
    };
    if let Err(why) = screen(&h) {
        return Verdict::Stack(why);
    }
    let found = route::lookup_ipv4(guard, ingress, h.daddr, h.saddr, h.tos);
    let hop = match self::route(found, |mtu| fits(&h, mtu)) {
        Ok(hop) => hop,
        Err(why) => return Verdict::Stack(why),
    };
    match hop.egress.mac_addr() {
        Some(src) => Verdict::Forward(Forward { header: h, hop, src }),
        None => Verdict::Stack(ToStack::Unsupported),
    }
}

/// What the header alone decides, before any table is consulted.
pub(crate) fn screen(h: &Header) -> Result<(), ToStack> {
    if h.has_options() {
        Err(ToStack::Options)
    } else if h.is_fragment() {
        Err(ToStack::Fragment)
    } else if h.ttl <= 1 {
        Err(ToStack::TtlExpired)
    } else if h.daddr_is_special() {
        Err(ToStack::SpecialAddress)
    } else {
        Ok(())
    }
}

/// What the route decides. `fits(mtu)` says whether the packet fits the
/// egress MTU (for a GRO-merged packet: whether each of its segments does).
pub(crate) fn route<'a>(route: Ipv4Route<'a>, fits: impl FnOnce(u32) -> bool) -> Result<NextHop<'a>, ToStack> {
    match route {
        Ipv4Route::Forward(hop) if fits(hop.mtu) => Ok(hop),
        Ipv4Route::Forward(_) => Err(ToStack::TooBig),
        Ipv4Route::Local => Err(ToStack::Local),
        Ipv4Route::NotUnicast | Ipv4Route::Unreachable => Err(ToStack::NoRoute),
        Ipv4Route::ForwardingOff => Err(ToStack::ForwardingOff),
        Ipv4Route::NoNeighbour => Err(ToStack::NoNeighbour),
        Ipv4Route::Unsupported => Err(ToStack::Unsupported),
    }
}

#[kunit_tests(fwd_decide)]
mod tests {
    use super::*;
    use kernel::net::{device::NetDevice, ethernet::MacAddr, namespace::Namespace};

    fn header() -> Header {
        Header {
            header_len: 20,
            total_len: 1000,
            tos: 0,
            frag: 0x4000,
            ttl: 64,
            protocol: 17,
            saddr: [10, 0, 1, 2],
            daddr: [10, 0, 2, 2],
        }
    }

    #[test]
    fn the_header_alone_sends_these_to_the_stack() {
        assert_eq!(screen(&header()), Ok(()));
        let with = |f: &dyn Fn(&mut Header)| {
            let mut h = header();
            f(&mut h);
            screen(&h)
        };
        assert_eq!(with(&|h| h.header_len = 24), Err(ToStack::Options));
        assert_eq!(with(&|h| h.frag = 0x2000), Err(ToStack::Fragment));
        assert_eq!(with(&|h| h.frag = 0x0001), Err(ToStack::Fragment));
        assert_eq!(with(&|h| h.ttl = 1), Err(ToStack::TtlExpired));
        assert_eq!(with(&|h| h.ttl = 0), Err(ToStack::TtlExpired));
        assert_eq!(with(&|h| h.ttl = 2), Ok(()));
        assert_eq!(with(&|h| h.daddr = [239, 1, 1, 1]), Err(ToStack::SpecialAddress));
        assert_eq!(with(&|h| h.daddr = [255, 255, 255, 255]), Err(ToStack::SpecialAddress));
    }

    #[test]
    fn the_route_sends_these_to_the_stack() {
        let all = |_| true;
        assert_eq!(route(Ipv4Route::Local, all).err(), Some(ToStack::Local));
        assert_eq!(route(Ipv4Route::Unreachable, all).err(), Some(ToStack::NoRoute));
        assert_eq!(route(Ipv4Route::NotUnicast, all).err(), Some(ToStack::NoRoute));
        assert_eq!(route(Ipv4Route::ForwardingOff, all).err(), Some(ToStack::ForwardingOff));
        assert_eq!(route(Ipv4Route::NoNeighbour, all).err(), Some(ToStack::NoNeighbour));
        assert_eq!(route(Ipv4Route::Unsupported, all).err(), Some(ToStack::Unsupported));
    }

    #[test]
    fn a_resolved_route_forwards_what_fits_its_mtu() -> Result {
        let lo = NetDevice::get_by_name(Namespace::init(), c"lo")?;
        let hop = |mtu| {
            Ipv4Route::Forward(NextHop { egress: &lo, address: [10, 0, 2, 2], mac: MacAddr::new([2, 0, 0, 0, 0, 1]), mtu })
        };
        let len = header().total_len as u32;
        let fits = |mtu: u32| len <= mtu;
        assert_eq!(route(hop(1500), fits).map(|h| h.mtu).ok(), Some(1500));
        assert_eq!(route(hop(1000), fits).map(|h| h.mtu).ok(), Some(1000));
        assert_eq!(route(hop(999), fits).err(), Some(ToStack::TooBig));
        Ok(())
    }
}
