// SPDX-License-Identifier: GPL-2.0

//! Receive demultiplexing on one device, before the protocol stack: a
//! frame under the polynic link header goes to the endpoint its index
//! names (a table indexed by it, as a controller's would be); an IPv4 UDP
//! or TCP frame to the endpoint of its flow (a hash table, exact flow first,
//! then the listening or unconnected endpoint of its local address and
//! port). Both lookups are constant time (an array; a fixed-capacity hash
//! table, `kernel::alloc::probe_table`). Fragments and everything
//! unmatched go to the stack unchanged.
//!
//! An index is confirmed by the flow it carries: a UDP or TCP endpoint
//! takes a framed packet only if the packet is of its flow. IPv4 under a
//! link header whose index names no endpoint of its flow (one that was
//! closed, BQI 0, a stale or forged index) loses the link header and goes
//! by its flow like plain IPv4, so a peer that still frames to a closed
//! endpoint reaches the stack, which answers as for any unknown flow.

use crate::endpoint::Endpoint;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use kernel::{
    alloc::probe_table::{ProbeKey, ProbeTable},
    net::{
        bqi::{
            self, Class, DeviceStat, EndpointKind, FlowKey, CLASSIFY_LEN, DEMUX_SAMPLE, DEVICE_STATS_LEN,
            DEVICE_STAT_COUNT, ETH_P_IPV4, LINK_HEADER_LEN, MAX_BQI,
        },
        device::NetDevice,
        ethernet::EtherType,
        rx_handler::{RxHandler, RxVerdict},
        skb::SkBuff,
    },
    new_spinlock_bh,
    prelude::*,
    sync::{Arc, SpinLockBh},
    time::{Instant, Monotonic},
};

/// Flows per device (the table has twice as many slots).
const FLOWS: usize = 512;

/// A flow as an endpoint registers it: its own address and port, and the
/// remote's (zero for any).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct FlowSpec {
    pub(crate) proto: u8,
    pub(crate) local_ip: [u8; 4],
    pub(crate) local_port: u16,
    pub(crate) remote_ip: [u8; 4],
    pub(crate) remote_port: u16,
}

impl FlowSpec {
    /// The listening form of this flow (any remote).
    fn open(self) -> Self {
        FlowSpec { remote_ip: [0; 4], remote_port: 0, ..self }
    }

    /// The flow a received frame belongs to (its destination is local).
    fn of_received(k: &FlowKey) -> Self {
        FlowSpec { proto: k.proto, local_ip: k.dst_ip, local_port: k.dst_port, remote_ip: k.src_ip, remote_port: k.src_port }
    }
}

impl ProbeKey for FlowSpec {
    /// FNV-1a over the fields: cheap, and spreads ports well.
    fn hash(&self) -> u32 {
        let mut h: u32 = 0x811c_9dc5;
        let mut mix = |b: u8| h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        let (l, r) = (self.local_port.to_be_bytes(), self.remote_port.to_be_bytes());
        let [a, b, c, d] = self.local_ip;
        let [e, f, g, i] = self.remote_ip;
        for byte in [self.proto, a, b, c, d, e, f, g, i, l[0], l[1], r[0], r[1]] {
            mix(byte);
        }
        h
    }
}

struct Table {
    by_index: KVec<Option<Arc<Endpoint>>>,
    flows: ProbeTable<FlowSpec, Arc<Endpoint>>,
}

/// Frame counts of one device's demultiplexer, in the ABI's order
/// (`IOC_DEVICE_STATS`). Relaxed atomics: each is a total on its own.
#[derive(Default)]
pub(crate) struct DeviceCounters([AtomicU64; DEVICE_STAT_COUNT]);

impl DeviceCounters {
    fn bump(&self, which: DeviceStat) {
        self.0[which as usize].fetch_add(1, Relaxed);
    }

    fn add(&self, which: DeviceStat, n: u64) {
        self.0[which as usize].fetch_add(n, Relaxed);
    }

    /// The counters as `IOC_DEVICE_STATS` returns them.
    pub(crate) fn to_bytes(&self) -> [u8; DEVICE_STATS_LEN] {
        let mut b = [0u8; DEVICE_STATS_LEN];
        for (chunk, c) in b.chunks_exact_mut(8).zip(self.0.iter()) {
            chunk.copy_from_slice(&c.load(Relaxed).to_ne_bytes());
        }
        b
    }
}

/// One device's demultiplexer: its receive handler and endpoint tables.
#[pin_data]
pub(crate) struct Demux {
    #[pin]
    table: SpinLockBh<Table>,
    pub(crate) counters: DeviceCounters,
    /// Frames seen, to pick the ones whose demultiplexing is timed.
    seen: AtomicU64,
}

impl Demux {
    pub(crate) fn new() -> Result<Arc<Self>> {
        let mut by_index = KVec::with_capacity(MAX_BQI as usize, GFP_KERNEL)?;
        for _ in 0..MAX_BQI {
            by_index.push(None, GFP_KERNEL)?;
        }
        let flows = ProbeTable::new(FLOWS)?;
        Arc::pin_init(
            try_pin_init!(Demux {
                table <- new_spinlock_bh!(Table { by_index, flows }),
                counters: DeviceCounters::default(),
                seen: AtomicU64::new(0),
            }),
            GFP_KERNEL,
        )
    }

    /// Chooses the index for a new endpoint: `bqi`, or the first free one
    /// if it is 0; checks that `flow` (UDP and TCP) is free. `EADDRINUSE` if
    /// the index or the flow is taken, `ENOSPC` if the tables are full.
    /// Insertions are serialised by the caller (the device list's mutex), so
    /// what this finds free stays free until [`Self::enter`].
    pub(crate) fn reserve(&self, bqi: u16, flow: Option<&FlowSpec>) -> Result<u16> {
        let t = self.table.lock();
        let free = |i: u16| t.by_index.get(i as usize).is_some_and(|e| e.is_none());
        let index = match bqi {
            0 => (1..MAX_BQI).find(|i| free(*i)).ok_or(ENOSPC)?,
            i if free(i) => i,
            _ => return Err(EADDRINUSE),
        };
        if let Some(spec) = flow {
            if t.flows.contains(spec) {
                return Err(EADDRINUSE);
            }
            if t.flows.len() >= t.flows.capacity() {
                return Err(ENOSPC);
            }
        }
        Ok(index)
    }

    /// Enters an endpoint under the index and flow [`Self::reserve`] found
    /// free.
    pub(crate) fn enter(&self, index: u16, flow: Option<FlowSpec>, endpoint: &Arc<Endpoint>) -> Result {
        let mut t = self.table.lock();
        if let Some(spec) = flow {
            t.flows.insert(spec, endpoint.clone()).map_err(|(e, _)| e)?;
        }
        match t.by_index.get_mut(index as usize) {
            Some(e) => *e = Some(endpoint.clone()),
            None => return Err(EINVAL),
        }
        Ok(())
    }

    /// Removes `endpoint` (whose flow, if any, is `flow`) from both tables.
    /// After it returns, no receive on this device will find the endpoint.
    pub(crate) fn remove(&self, endpoint: &Arc<Endpoint>, flow: Option<&FlowSpec>) {
        let mut t = self.table.lock();
        if let Some(e) = t.by_index.get_mut(endpoint.bqi() as usize) {
            if e.as_ref().is_some_and(|x| Arc::ptr_eq(x, endpoint)) {
                *e = None;
            }
        }
        if let Some(spec) = flow {
            if t.flows.get(spec).is_some_and(|x| Arc::ptr_eq(x, endpoint)) {
                t.flows.remove(spec);
            }
        }
    }

    /// Whether no endpoint is attached.
    pub(crate) fn is_empty(&self) -> bool {
        self.table.lock().by_index.iter().all(|e| e.is_none())
    }

    /// Ends every endpoint and takes it out of the tables (the device is
    /// going away). Process context.
    pub(crate) fn end_all(&self) {
        // Room for all of them before the lock: ending must not depend on
        // an atomic allocation succeeding.
        let Ok(mut out) = KVec::with_capacity(MAX_BQI as usize, GFP_KERNEL) else {
            // Without memory, end them under the lock (table, then each
            // endpoint's own locks: the order every path keeps).
            let mut t = self.table.lock();
            for e in t.by_index.iter_mut() {
                if let Some(ep) = e.take() {
                    ep.end();
                }
            }
            t.flows.drain(drop);
            return;
        };
        {
            let mut t = self.table.lock();
            for e in t.by_index.iter_mut() {
                if let Some(ep) = e.take() {
                    // Within the capacity reserved above: cannot fail.
                    let _ = out.push_within_capacity(ep);
                }
            }
            t.flows.drain(drop);
        }
        for ep in out {
            ep.end();
        }
    }

    /// Where a classified frame goes.
    fn lookup(&self, class: &Class) -> Verdict {
        let t = self.table.lock();
        let by_flow = |key: &FlowKey| {
            let spec = FlowSpec::of_received(key);
            t.flows.get(&spec).or_else(|| t.flows.get(&spec.open())).cloned()
        };
        match class {
            Class::Bqi { link, flow } => {
                let named = match link.dst_bqi {
                    0 => None,
                    i => t.by_index.get(i as usize).and_then(|e| e.as_ref()),
                };
                match named {
                    Some(e) if e.config.kind == EndpointKind::Raw => Verdict::Endpoint(e.clone()),
                    Some(e) if flow.as_ref().is_some_and(|f| e.config.admits(f)) => Verdict::Endpoint(e.clone()),
                    _ if link.inner == ETH_P_IPV4 => Verdict::Untag(flow.as_ref().and_then(by_flow)),
                    _ if link.dst_bqi == 0 => Verdict::Stack,
                    _ => Verdict::NoEndpoint,
                }
            }
            Class::Flow(key) => by_flow(key).map_or(Verdict::Stack, Verdict::Endpoint),
            Class::Stack => Verdict::Stack,
        }
    }
}

impl Demux {
    /// Classifies a frame and finds its endpoint: the demultiplexing proper.
    fn demux(&self, skb: &SkBuff) -> Verdict {
        let n = (skb.len() as usize).min(CLASSIFY_LEN);
        // The headers are normally in the linear part: read them there, and
        // copy them out only from a paged buffer.
        let mut copy;
        let head = match skb.data().get(..n) {
            Some(linear) => linear,
            None => {
                copy = [0u8; CLASSIFY_LEN];
                if skb.copy_bits(0, &mut copy[..n]).is_err() {
                    return Verdict::Stack;
                }
                &copy[..n]
            }
        };
        match bqi::classify(skb.protocol().0, head) {
            Err(_) => Verdict::Malformed,
            Ok(class) => self.lookup(&class),
        }
    }

    /// Takes the link header off IPv4 whose index was not confirmed and
    /// sends the packet where its flow goes (`endpoint`, else the stack).
    fn untag(&self, skb: SkBuff, endpoint: Option<Arc<Endpoint>>) -> RxVerdict {
        self.counters.bump(DeviceStat::Unconfirmed);
        let untagged = skb.unshare(GFP_ATOMIC).and_then(|mut skb| {
            skb.remove_tag(LINK_HEADER_LEN as u32, EtherType::IPV4)?;
            Ok(skb.into_shared())
        });
        let Ok(skb) = untagged else {
            // Dropped by the failed call (no memory, or a frame too short
            // for its own link header).
            self.counters.bump(DeviceStat::Malformed);
            return RxVerdict::Consumed;
        };
        match endpoint {
            Some(endpoint) => {
                self.counters.bump(DeviceStat::Delivered);
                endpoint.deliver(skb);
                RxVerdict::Consumed
            }
            None => {
                self.counters.bump(DeviceStat::ToStack);
                RxVerdict::Pass(skb)
            }
        }
    }
}

/// Where a frame goes.
enum Verdict {
    Endpoint(Arc<Endpoint>),
    Stack,
    /// IPv4 under a link header whose index named no endpoint of its flow:
    /// untagged, then to its flow's endpoint if any, else to the stack.
    Untag(Option<Arc<Endpoint>>),
    NoEndpoint,
    Malformed,
}

impl RxHandler for Demux {
    fn receive(&self, skb: SkBuff, _dev: &NetDevice) -> RxVerdict {
        // Only frames for this host: not ones seen in promiscuous mode, nor
        // ones of a VLAN no device here claims (the stack hands those over
        // untagged; they are not this device's traffic).
        if !skb.is_to_host() || skb.has_vlan_tag() {
            self.counters.bump(DeviceStat::ToStack);
            return RxVerdict::Pass(skb);
        }
        let verdict = if self.seen.fetch_add(1, Relaxed) % DEMUX_SAMPLE == 0 {
            // An empty interval beside the timed one: what reading the clock
            // costs (under emulation, more than the lookup).
            let before = Instant::<Monotonic>::now();
            let start = Instant::<Monotonic>::now();
            let v = self.demux(&skb);
            let end = Instant::<Monotonic>::now();
            self.counters.bump(DeviceStat::DemuxSamples);
            self.counters.add(DeviceStat::DemuxNanos, (end - start).as_nanos().unsigned_abs());
            self.counters.add(DeviceStat::ClockNanos, (start - before).as_nanos().unsigned_abs());
            v
        } else {
            self.demux(&skb)
        };
        match verdict {
            Verdict::Endpoint(endpoint) => {
                self.counters.bump(DeviceStat::Delivered);
                endpoint.deliver(skb);
                RxVerdict::Consumed
            }
            Verdict::Stack => {
                self.counters.bump(DeviceStat::ToStack);
                RxVerdict::Pass(skb)
            }
            Verdict::Untag(endpoint) => self.untag(skb, endpoint),
            Verdict::NoEndpoint => {
                self.counters.bump(DeviceStat::NoEndpoint);
                drop(skb);
                RxVerdict::Consumed
            }
            Verdict::Malformed => {
                self.counters.bump(DeviceStat::Malformed);
                drop(skb);
                RxVerdict::Consumed
            }
        }
    }
}
