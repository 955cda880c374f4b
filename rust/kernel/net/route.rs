// SPDX-License-Identifier: GPL-2.0

//! IPv4 routing decisions for a forwarding fast path: the route a packet
//! arriving on a device would take, with its next hop's link address, from
//! the kernel's own tables (the FIB as `ip route` shows it, the neighbour
//! table as `ip neigh` shows it, and the ingress device's forwarding sysctl).
//!
//! This is the question `bpf_fib_lookup` answers for XDP, asked from Rust:
//! every answer that is not [`Ipv4Route::Forward`] means "let the stack
//! handle it", which then does what Linux does (delivers locally, sends an
//! ICMP error, resolves the neighbour). Source validation (`rp_filter`),
//! netfilter and policy routing on marks are not applied: a user of this
//! lookup documents that.
//!
//! C header: [`include/net/ip_fib.h`](srctree/include/net/ip_fib.h)

use super::{device::NetDevice, ethernet::MacAddr};
use crate::{bindings, sync::rcu};

/// Where an IPv4 packet received on a device goes next.
#[derive(Debug)]
pub enum Ipv4Route<'a> {
    /// Forward it: out of `egress` to `next_hop`.
    Forward(NextHop<'a>),
    /// It is for this host.
    Local,
    /// The route is not a unicast one (broadcast, multicast, blackhole,
    /// unreachable or prohibit routes).
    NotUnicast,
    /// No route (or the lookup failed).
    Unreachable,
    /// Forwarding is off on the ingress device (`net.ipv4.conf.DEV.forwarding`).
    ForwardingOff,
    /// The next hop's link address is not known (yet): the stack resolves it.
    NoNeighbour,
    /// A route this lookup does not handle (tunnels, IPv6 next hops, devices
    /// without Ethernet-sized addresses).
    Unsupported,
}

/// A resolved next hop, valid for the RCU read section it was looked up in.
#[derive(Debug)]
pub struct NextHop<'a> {
    /// The device to send on.
    pub egress: &'a NetDevice,
    /// The next hop's address: the gateway, or the destination on a link.
    pub address: [u8; 4],
    /// The next hop's link address, from the neighbour table.
    pub mac: MacAddr,
    /// The path MTU of the route.
    pub mtu: u32,
}

/// Looks up the route of a packet from `saddr` to `daddr` with type of
/// service `tos`, received on `ingress`. The answer holds for the read
/// section `_rcu` (route and neighbour changes take effect on the next
/// lookup); the egress device is valid while it is held, as devices are
/// freed only after a grace period.
pub fn lookup_ipv4<'a>(
    _rcu: &'a rcu::Guard,
    ingress: &NetDevice,
    daddr: [u8; 4],
    saddr: [u8; 4],
    tos: u8,
) -> Ipv4Route<'a> {
    let mut out = bindings::polynic_fib4_result {
        egress: core::ptr::null_mut(),
        nexthop: 0,
        mtu: 0,
        dmac: [0; 6],
    };
    // SAFETY: `ingress` is live; the caller holds the RCU read lock
    // (`_rcu`), which the lookup and its answer need; `out` is writable.
    let verdict = unsafe {
        bindings::polynic_fib4_lookup(
            ingress.as_raw(),
            u32::from_ne_bytes(daddr),
            u32::from_ne_bytes(saddr),
            tos,
            &mut out,
        )
    };
    match u32::try_from(verdict).unwrap_or(bindings::POLYNIC_FIB4_UNSUPPORTED) {
        bindings::POLYNIC_FIB4_FORWARD if !out.egress.is_null() => {
            // Devices are freed only after a grace period, which `_rcu` holds off for `'a`.
            // SAFETY: The FIB held the device when we looked, in this read section.
            let egress = unsafe { NetDevice::from_raw(out.egress) };
            Ipv4Route::Forward(NextHop {
                egress,
                address: out.nexthop.to_ne_bytes(),
                mac: MacAddr::new(out.dmac),
                mtu: out.mtu,
            })
        }
        bindings::POLYNIC_FIB4_LOCAL => Ipv4Route::Local,
        bindings::POLYNIC_FIB4_NOT_UNICAST => Ipv4Route::NotUnicast,
        bindings::POLYNIC_FIB4_UNREACHABLE => Ipv4Route::Unreachable,
        bindings::POLYNIC_FIB4_FORWARDING_OFF => Ipv4Route::ForwardingOff,
        bindings::POLYNIC_FIB4_NO_NEIGHBOUR => Ipv4Route::NoNeighbour,
        _ => Ipv4Route::Unsupported,
    }
}
