// SPDX-License-Identifier: GPL-2.0

//! BQI demux device: link header, shared-memory layout, descriptors,
//! configuration, receive classification and send templates, version 1.
//!
//! This file is `core`-only on purpose: the kernel crate compiles it verbatim
//! as `kernel::net::bqi` (the `bqi` module speaks it) and so do the user-space
//! registry and protocol library. `docs/bqi.md` describes the device in prose;
//! this file is the normative definition.
//!
//! # The shared area
//!
//! An endpoint's file maps one area (`mmap` at offset 0, [`Layout::area_len`]
//! bytes), allocated by the kernel when the endpoint is configured and freed
//! when the file is closed. Its parts, in order, each starting on a page:
//!
//! - the control page: an [`Info`] block the kernel writes once, then one
//!   32-bit control word per 64-byte line ([`REQ_HEAD`], [`REQ_TAIL`],
//!   [`EVT_TAIL`], [`EVT_HEAD`], [`SENDS_DONE`], [`FLAGS`]);
//! - the request queue: [`Layout::req_entries`] descriptors of
//!   [`DESC_LEN`] bytes ([`Request`]), application to kernel;
//! - the event queue: [`Layout::evt_entries`] descriptors of [`DESC_LEN`]
//!   bytes ([`Event`]), kernel to application;
//! - the packet buffers: [`Layout::buf_count`] buffers of
//!   [`Layout::buf_size`] bytes. A frame always starts at its buffer's start.
//!
//! Control words and descriptors are native-endian (both sides run on one
//! host); the link header is in network byte order.
//!
//! # Indices and memory ordering
//!
//! Queue positions are free-running `u32` counters; a position's slot is
//! `position % entries` (entries are powers of two, so wrapping is seamless).
//!
//! - Requests: the application writes descriptors, then stores [`REQ_HEAD`]
//!   with *release*. The kernel loads [`REQ_HEAD`] with *acquire*, takes
//!   every descriptor up to it, then stores [`REQ_TAIL`] with *release*; a
//!   slot below [`REQ_TAIL`] may be reused.
//! - Events: the kernel writes an event's body, then its `seq` word with
//!   *release*: `seq == position + 1` (wrapping) marks the event at
//!   `position` ready, so the application polls memory, never the kernel,
//!   and zeroed memory is never mistaken for an event. The application
//!   loads `seq` with *acquire*, reads the body, and when done stores
//!   [`EVT_TAIL`] with *release*. The kernel never overwrites a slot at or
//!   above [`EVT_TAIL`]: with no room, a frame is dropped and counted.
//!   [`EVT_HEAD`] (the kernel's next position) is informational.
//! - Send completion: [`SENDS_DONE`] counts send descriptors the kernel has
//!   finished with (sent, refused by the template, or malformed), stored with *release* after the
//!   kernel's last read of their buffers. The application frees send
//!   buffers lazily from it; there is no event per send.
//! - Doorbell: [`FLAG_NEED_WAKEUP`] in [`FLAGS`] is set while no kernel
//!   context is taking requests. After storing [`REQ_HEAD`] the application
//!   issues a sequentially consistent fence and reads [`FLAGS`]; only if the
//!   flag is set does it make the doorbell call ([`IOC_KICK`]). The kernel
//!   sets the flag, issues the same fence and loads [`REQ_HEAD`] again
//!   before it stops taking requests, so no request is left behind.
//!
//! The kernel trusts nothing the application writes: ring indices out of
//! range and malformed descriptors give error events ([`EventKind`]) and
//! counters, never a read or write outside the endpoint's own area.

/// Ethertype of frames carrying a polynic link header (an IEEE 802 local
/// experimental ethertype).
pub const ETH_P_BQI: u16 = 0x88b5;
/// Ethertype of IPv4.
pub const ETH_P_IPV4: u16 = 0x0800;
/// Length of an Ethernet header without VLAN tag.
pub const ETH_HEADER_LEN: usize = 14;
/// Length of the polynic link header that follows the Ethernet header.
pub const LINK_HEADER_LEN: usize = 8;
/// Link header version this file defines.
pub const LINK_VERSION: u8 = 1;
/// Buffer queue indices are below this. Index 0 is the kernel's: a frame
/// for BQI 0 goes to the protocol stack.
pub const MAX_BQI: u16 = 4096;
/// IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;
/// IP protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;

/// The polynic link header: selects the receiving endpoint by buffer queue
/// index, as a controller's hardware demultiplexing would, and carries the
/// sender's own index so a peer can learn where to answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkHeader {
    /// Index of the endpoint the frame is for on the receiving host.
    pub dst_bqi: u16,
    /// Index of the sending endpoint on its host (0: the kernel).
    pub src_bqi: u16,
    /// Ethertype of what follows ([`ETH_P_IPV4`], or anything for raw
    /// endpoint-to-endpoint frames).
    pub inner: u16,
}

/// Why a frame is not what it claims to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// Shorter than its headers.
    Short,
    /// A link header of another version, or with flag bits set.
    LinkVersion,
    /// An index at or above [`MAX_BQI`].
    BqiRange,
    /// An IPv4 header with the wrong version or length fields.
    IpHeader,
}

impl LinkHeader {
    /// Parses the link header at the start of `b` (the bytes after the
    /// Ethernet header).
    pub fn parse(b: &[u8]) -> Result<Self, Malformed> {
        let h = b.get(..LINK_HEADER_LEN).ok_or(Malformed::Short)?;
        if h[0] != LINK_VERSION || h[1] != 0 {
            return Err(Malformed::LinkVersion);
        }
        let dst_bqi = be16(h, 2);
        let src_bqi = be16(h, 4);
        if dst_bqi >= MAX_BQI || src_bqi >= MAX_BQI {
            return Err(Malformed::BqiRange);
        }
        Ok(LinkHeader { dst_bqi, src_bqi, inner: be16(h, 6) })
    }

    /// Writes the header into the first [`LINK_HEADER_LEN`] bytes of `out`.
    pub fn encode(&self, out: &mut [u8]) -> Option<()> {
        let h = out.get_mut(..LINK_HEADER_LEN)?;
        h[0] = LINK_VERSION;
        h[1] = 0;
        h[2..4].copy_from_slice(&self.dst_bqi.to_be_bytes());
        h[4..6].copy_from_slice(&self.src_bqi.to_be_bytes());
        h[6..8].copy_from_slice(&self.inner.to_be_bytes());
        Some(())
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

// ---------------------------------------------------------------------------
// Receive classification: what decides which endpoint a frame goes to.

/// Bytes after the Ethernet header that [`classify`] may look at: the link
/// header, an IPv4 header with options and the ports.
pub const CLASSIFY_LEN: usize = LINK_HEADER_LEN + 60 + 4;

/// The IPv4 addresses, protocol and ports of a frame, as the receiver sees
/// them (`src` is the remote end).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// [`IPPROTO_UDP`] or [`IPPROTO_TCP`].
    pub proto: u8,
    /// Source address (the remote end, for a received frame).
    pub src_ip: [u8; 4],
    /// Destination address.
    pub dst_ip: [u8; 4],
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

/// Where a received frame may go, from its headers alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// A polynic link header naming endpoint `dst_bqi` (0: the kernel),
    /// with the flow of what it carries when that is an unfragmented IPv4
    /// UDP or TCP packet. The index selects an endpoint; a UDP or TCP
    /// endpoint takes the frame only if the flow is its own
    /// ([`EndpointConfig::admits`]), so an index can never carry one flow's
    /// data into another's endpoint.
    Bqi {
        /// The link header.
        link: LinkHeader,
        /// The inner packet's flow, if it has one.
        flow: Option<FlowKey>,
    },
    /// An unfragmented IPv4 UDP or TCP packet, found by its flow.
    Flow(FlowKey),
    /// Anything else (other protocols, IPv4 fragments, other ethertypes):
    /// the protocol stack's.
    Stack,
}

/// Classifies a received frame from its ethertype and the first bytes after
/// its Ethernet header (up to [`CLASSIFY_LEN`]; fewer if the frame is
/// shorter). Malformed link headers are refused; malformed IPv4 goes to the
/// stack, which counts it as it always does.
pub fn classify(ethertype: u16, head: &[u8]) -> Result<Class, Malformed> {
    match ethertype {
        ETH_P_BQI => {
            let link = LinkHeader::parse(head)?;
            let flow = match link.inner {
                ETH_P_IPV4 => head.get(LINK_HEADER_LEN..).and_then(|inner| ipv4_flow(inner).ok().flatten()),
                _ => None,
            };
            Ok(Class::Bqi { link, flow })
        }
        ETH_P_IPV4 => Ok(match ipv4_flow(head) {
            Ok(Some(flow)) => Class::Flow(flow),
            _ => Class::Stack,
        }),
        _ => Ok(Class::Stack),
    }
}

/// Parsed IPv4 header fields a template or the demultiplexer needs.
struct Ipv4<'a> {
    proto: u8,
    src: [u8; 4],
    dst: [u8; 4],
    /// The transport header and what follows, within the IP total length.
    l4: &'a [u8],
    fragment: bool,
}

fn ipv4(b: &[u8]) -> Result<Ipv4<'_>, Malformed> {
    let first = *b.first().ok_or(Malformed::Short)?;
    if first >> 4 != 4 {
        return Err(Malformed::IpHeader);
    }
    let ihl = usize::from(first & 0xf) * 4;
    if ihl < 20 {
        return Err(Malformed::IpHeader);
    }
    let h = b.get(..ihl).ok_or(Malformed::Short)?;
    let total = usize::from(be16(h, 2));
    if total < ihl {
        return Err(Malformed::IpHeader);
    }
    let frag = be16(h, 6);
    let l4 = b.get(ihl..total.min(b.len())).ok_or(Malformed::Short)?;
    Ok(Ipv4 {
        proto: h[9],
        src: [h[12], h[13], h[14], h[15]],
        dst: [h[16], h[17], h[18], h[19]],
        l4,
        fragment: frag & 0x3fff != 0,
    })
}

/// The flow of an unfragmented UDP or TCP packet; `None` for other
/// protocols and fragments.
fn ipv4_flow(b: &[u8]) -> Result<Option<FlowKey>, Malformed> {
    let ip = ipv4(b)?;
    if ip.fragment || (ip.proto != IPPROTO_UDP && ip.proto != IPPROTO_TCP) {
        return Ok(None);
    }
    let ports = ip.l4.get(..4).ok_or(Malformed::Short)?;
    Ok(Some(FlowKey {
        proto: ip.proto,
        src_ip: ip.src,
        dst_ip: ip.dst,
        src_port: be16(ports, 0),
        dst_port: be16(ports, 2),
    }))
}

// ---------------------------------------------------------------------------
// Endpoint configuration (privileged) and the send template derived from it.

/// What an endpoint receives and may send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum EndpointKind {
    /// Raw frames under the polynic link header, to and from one peer
    /// endpoint: received by index, sent with the endpoint's own index as
    /// source and the peer's as destination.
    Raw = 1,
    /// UDP: received by flow (remote open for an unconnected endpoint).
    Udp = 2,
    /// TCP: received by flow (remote open for a listening endpoint).
    Tcp = 3,
}

/// Size of [`EndpointConfig`] as passed to [`IOC_CONFIGURE`].
pub const CONFIG_LEN: usize = 48;

/// An endpoint's configuration, given once by a holder of `CAP_NET_ADMIN`
/// ([`IOC_CONFIGURE`]); after it the endpoint is sealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndpointConfig {
    /// Interface index of the net device, in the caller's network namespace.
    pub ifindex: u32,
    /// What the endpoint carries.
    pub kind: EndpointKind,
    /// This endpoint's buffer queue index, 1 to [`MAX_BQI`] - 1, or 0 to
    /// let the device choose (it reports its choice in [`Info::bqi`]).
    pub bqi: u16,
    /// The peer endpoint's index: frames are sent under a link header to
    /// it. Required for [`EndpointKind::Raw`]; 0 for UDP and TCP sends
    /// plain IPv4 (the peer does not speak BQI).
    pub peer_bqi: u16,
    /// Local IPv4 address (UDP, TCP).
    pub local_ip: [u8; 4],
    /// Remote IPv4 address, or 0.0.0.0 for any (with `remote_port` 0).
    pub remote_ip: [u8; 4],
    /// Local port (UDP, TCP), not 0.
    pub local_port: u16,
    /// Remote port, or 0 for any (with `remote_ip` 0.0.0.0).
    pub remote_port: u16,
    /// Size of each packet buffer: a power of two from [`MIN_BUF_SIZE`] to
    /// [`MAX_BUF_SIZE`], large enough for the device's largest frame.
    pub buf_size: u32,
    /// Number of packet buffers, 1 to [`MAX_BUFFERS`].
    pub buf_count: u32,
    /// Request queue entries: a power of two from [`MIN_ENTRIES`] to
    /// [`MAX_ENTRIES`].
    pub req_entries: u32,
    /// Event queue entries: a power of two from [`MIN_ENTRIES`] to
    /// [`MAX_ENTRIES`].
    pub evt_entries: u32,
}

/// Why a configuration was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// A version other than [`ABI_VERSION`], an unknown kind or non-zero
    /// reserved bytes.
    Version,
    /// An index at or above [`MAX_BQI`], or a raw endpoint without a peer.
    Bqi,
    /// Local port 0, a remote address without a port or the reverse, or
    /// addresses on a raw endpoint.
    Address,
    /// A buffer size, count or queue size out of range.
    Sizes,
}

/// Version of the shared-memory layout and ioctl structures.
pub const ABI_VERSION: u32 = 1;
/// Smallest packet buffer.
pub const MIN_BUF_SIZE: u32 = 256;
/// Largest packet buffer (a 9000-byte MTU frame fits in 16 KiB).
pub const MAX_BUF_SIZE: u32 = 16384;
/// Most packet buffers per endpoint.
pub const MAX_BUFFERS: u32 = 4096;
/// Fewest queue entries.
pub const MIN_ENTRIES: u32 = 8;
/// Most queue entries.
pub const MAX_ENTRIES: u32 = 16384;

impl EndpointConfig {
    /// Encodes the structure as [`IOC_CONFIGURE`] passes it.
    pub fn to_bytes(&self) -> [u8; CONFIG_LEN] {
        let mut b = [0u8; CONFIG_LEN];
        put32(&mut b, 0, ABI_VERSION);
        put32(&mut b, 4, self.ifindex);
        put32(&mut b, 8, self.kind as u32);
        b[12..14].copy_from_slice(&self.bqi.to_ne_bytes());
        b[14..16].copy_from_slice(&self.peer_bqi.to_ne_bytes());
        b[16..20].copy_from_slice(&self.local_ip);
        b[20..24].copy_from_slice(&self.remote_ip);
        b[24..26].copy_from_slice(&self.local_port.to_ne_bytes());
        b[26..28].copy_from_slice(&self.remote_port.to_ne_bytes());
        put32(&mut b, 28, self.buf_size);
        put32(&mut b, 32, self.buf_count);
        put32(&mut b, 36, self.req_entries);
        put32(&mut b, 40, self.evt_entries);
        b
    }

    /// Decodes and validates what a caller passed.
    pub fn from_bytes(b: &[u8; CONFIG_LEN]) -> Result<Self, ConfigError> {
        if get32(b, 0) != ABI_VERSION || get32(b, 44) != 0 {
            return Err(ConfigError::Version);
        }
        let kind = match get32(b, 8) {
            1 => EndpointKind::Raw,
            2 => EndpointKind::Udp,
            3 => EndpointKind::Tcp,
            _ => return Err(ConfigError::Version),
        };
        let c = EndpointConfig {
            ifindex: get32(b, 4),
            kind,
            bqi: u16::from_ne_bytes([b[12], b[13]]),
            peer_bqi: u16::from_ne_bytes([b[14], b[15]]),
            local_ip: [b[16], b[17], b[18], b[19]],
            remote_ip: [b[20], b[21], b[22], b[23]],
            local_port: u16::from_ne_bytes([b[24], b[25]]),
            remote_port: u16::from_ne_bytes([b[26], b[27]]),
            buf_size: get32(b, 28),
            buf_count: get32(b, 32),
            req_entries: get32(b, 36),
            evt_entries: get32(b, 40),
        };
        c.validate()?;
        Ok(c)
    }

    /// Checks every field against the rules on each.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.bqi >= MAX_BQI || self.peer_bqi >= MAX_BQI {
            return Err(ConfigError::Bqi);
        }
        let open_ip = self.remote_ip == [0; 4];
        let open_port = self.remote_port == 0;
        match self.kind {
            EndpointKind::Raw => {
                if self.peer_bqi == 0 {
                    return Err(ConfigError::Bqi);
                }
                if self.local_ip != [0; 4] || !open_ip || self.local_port != 0 || !open_port {
                    return Err(ConfigError::Address);
                }
            }
            EndpointKind::Udp | EndpointKind::Tcp => {
                if self.local_port == 0 || open_ip != open_port || self.local_ip == [0; 4] {
                    return Err(ConfigError::Address);
                }
            }
        }
        Layout::new(self.buf_size, self.buf_count, self.req_entries, self.evt_entries)
            .map(|_| ())
            .ok_or(ConfigError::Sizes)
    }

    /// Whether the endpoint receives from any remote end.
    pub fn remote_is_open(&self) -> bool {
        self.remote_port == 0
    }

    /// Whether a received packet of `flow` is this endpoint's: its
    /// protocol, to the endpoint's address and port, and from the connected
    /// remote unless the remote is open. Never true for a raw endpoint.
    pub fn admits(&self, flow: &FlowKey) -> bool {
        Some(flow.proto) == self.proto()
            && flow.dst_ip == self.local_ip
            && flow.dst_port == self.local_port
            && (self.remote_is_open() || (flow.src_ip == self.remote_ip && flow.src_port == self.remote_port))
    }

    /// The IP protocol of a UDP or TCP endpoint.
    pub fn proto(&self) -> Option<u8> {
        match self.kind {
            EndpointKind::Raw => None,
            EndpointKind::Udp => Some(IPPROTO_UDP),
            EndpointKind::Tcp => Some(IPPROTO_TCP),
        }
    }
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

fn get32(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Why a frame an endpoint asked to send was refused; carried in the
/// `code` of a [`EventKind::SendRefused`] event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum Reject {
    /// Shorter than its headers, or longer than the device's largest frame.
    Length = 1,
    /// Ethernet source is not the device's address.
    SourceMac = 2,
    /// Ethertype other than the template's.
    EtherType = 3,
    /// A link header of another version or with flags, or whose source
    /// index is not the endpoint's.
    SourceBqi = 4,
    /// Link header destination index is not the peer's.
    DestinationBqi = 5,
    /// Link header names another inner protocol than IPv4.
    Inner = 6,
    /// IPv4 header malformed, or a fragment.
    IpHeader = 7,
    /// IP protocol is not the endpoint's.
    Protocol = 8,
    /// IPv4 source is not the endpoint's address.
    SourceIp = 9,
    /// IPv4 destination is not the connected peer.
    DestinationIp = 10,
    /// Source port is not the endpoint's.
    SourcePort = 11,
    /// Destination port is not the connected peer's.
    DestinationPort = 12,
}

/// The headers an endpoint's frames must carry, fixed when it is
/// configured. Every field the template names is compared with the frame's
/// own bytes after they have been copied out of the shared area, so the
/// application cannot change a frame between the check and the send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Template {
    /// The device's MAC address: the only Ethernet source allowed.
    pub src_mac: [u8; 6],
    /// The endpoint's configuration (kind, indices, addresses, ports).
    pub config: EndpointConfig,
    /// The endpoint's own index (the configured one, or the one chosen).
    pub bqi: u16,
}

impl Template {
    /// Checks a whole Ethernet frame against the template. `max_len` is
    /// the device's largest frame (MTU plus Ethernet header).
    pub fn check(&self, frame: &[u8], max_len: usize) -> Result<(), Reject> {
        if frame.len() < ETH_HEADER_LEN || frame.len() > max_len {
            return Err(Reject::Length);
        }
        if frame[6..12] != self.src_mac {
            return Err(Reject::SourceMac);
        }
        let ethertype = be16(frame, 12);
        let mut rest = &frame[ETH_HEADER_LEN..];
        let c = &self.config;
        // A peer index fixes the framing: under the link header, to that
        // index. An endpoint whose remote is open (listening TCP,
        // unconnected UDP) talks to peers that differ, so it may send plain
        // IPv4 or frame a packet to the index its peer's own frames named
        // (learned from their link headers, or exchanged by the
        // registries). Either way the addresses and ports below are
        // checked; and the peer's kernel gives a framed packet to the
        // endpoint its index names only if the packet's flow is that
        // endpoint's (`EndpointConfig::admits`), so an index chosen here
        // reaches nothing a plain packet of the same flow could not.
        let must_frame = c.peer_bqi != 0;
        let may_frame = must_frame || (c.kind != EndpointKind::Raw && c.remote_is_open());
        if ethertype == ETH_P_BQI && may_frame {
            let link = LinkHeader::parse(rest).map_err(|e| match e {
                Malformed::Short => Reject::Length,
                _ => Reject::SourceBqi,
            })?;
            if link.src_bqi != self.bqi {
                return Err(Reject::SourceBqi);
            }
            if link.dst_bqi == 0 || (must_frame && link.dst_bqi != c.peer_bqi) {
                return Err(Reject::DestinationBqi);
            }
            if c.kind == EndpointKind::Raw {
                return Ok(());
            }
            if link.inner != ETH_P_IPV4 {
                return Err(Reject::Inner);
            }
            rest = &rest[LINK_HEADER_LEN..];
        } else if must_frame || ethertype != ETH_P_IPV4 {
            return Err(Reject::EtherType);
        }
        let ip = ipv4(rest).map_err(|e| match e {
            Malformed::Short => Reject::Length,
            _ => Reject::IpHeader,
        })?;
        if ip.fragment || usize::from(be16(rest, 2)) > rest.len() {
            return Err(Reject::IpHeader);
        }
        if Some(ip.proto) != c.proto() {
            return Err(Reject::Protocol);
        }
        let l4_min = if ip.proto == IPPROTO_TCP { 20 } else { 8 };
        let ports = ip.l4.get(..l4_min).ok_or(Reject::Length)?;
        if ip.src != c.local_ip {
            return Err(Reject::SourceIp);
        }
        if !c.remote_is_open() && ip.dst != c.remote_ip {
            return Err(Reject::DestinationIp);
        }
        if be16(ports, 0) != c.local_port {
            return Err(Reject::SourcePort);
        }
        if !c.remote_is_open() && be16(ports, 2) != c.remote_port {
            return Err(Reject::DestinationPort);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Shared-memory layout.

/// Page size the layout is built on (x86-64).
pub const PAGE_SIZE: u32 = 4096;
/// Size of a request or event descriptor.
pub const DESC_LEN: u32 = 16;
/// Magic number at the start of the control page: "BQI1".
pub const AREA_MAGIC: u32 = 0x3149_5142;
/// Byte offset in the control page of the application's request producer
/// position.
pub const REQ_HEAD: u32 = 256;
/// Byte offset of the kernel's request consumer position.
pub const REQ_TAIL: u32 = 320;
/// Byte offset of the application's event consumer position.
pub const EVT_TAIL: u32 = 384;
/// Byte offset of the kernel's event producer position (informational).
pub const EVT_HEAD: u32 = 448;
/// Byte offset of the cumulative count of finished send descriptors.
pub const SENDS_DONE: u32 = 512;
/// Byte offset of the flags word ([`FLAG_NEED_WAKEUP`], [`FLAG_ENDED`]).
pub const FLAGS: u32 = 576;
/// No kernel context is taking requests: a doorbell is needed.
pub const FLAG_NEED_WAKEUP: u32 = 1 << 0;
/// The endpoint has ended (its device went away); nothing more is sent or
/// received, and the file can only be closed.
pub const FLAG_ENDED: u32 = 1 << 1;
/// Largest area an endpoint may have.
pub const MAX_AREA_LEN: u64 = 64 << 20;

/// Where everything lies in an endpoint's shared area. Built only by
/// [`Layout::new`], which checks the sizes, so every offset it gives is
/// within [`Layout::area_len`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    buf_size: u32,
    buf_count: u32,
    req_entries: u32,
    evt_entries: u32,
    req_offset: u32,
    evt_offset: u32,
    buf_offset: u32,
    area_len: u32,
}

const fn page_up(n: u64) -> u64 {
    n.div_ceil(PAGE_SIZE as u64) * PAGE_SIZE as u64
}

impl Layout {
    /// The layout for these sizes, or `None` if any is out of range.
    pub fn new(buf_size: u32, buf_count: u32, req_entries: u32, evt_entries: u32) -> Option<Self> {
        let entries_ok = |n: u32| n.is_power_of_two() && (MIN_ENTRIES..=MAX_ENTRIES).contains(&n);
        if !buf_size.is_power_of_two()
            || !(MIN_BUF_SIZE..=MAX_BUF_SIZE).contains(&buf_size)
            || !(1..=MAX_BUFFERS).contains(&buf_count)
            || !entries_ok(req_entries)
            || !entries_ok(evt_entries)
        {
            return None;
        }
        let req_offset = u64::from(PAGE_SIZE);
        let evt_offset = page_up(req_offset + u64::from(req_entries) * u64::from(DESC_LEN));
        let buf_offset = page_up(evt_offset + u64::from(evt_entries) * u64::from(DESC_LEN));
        let area_len = page_up(buf_offset + u64::from(buf_size) * u64::from(buf_count));
        if area_len > MAX_AREA_LEN {
            return None;
        }
        Some(Layout {
            buf_size,
            buf_count,
            req_entries,
            evt_entries,
            req_offset: req_offset as u32,
            evt_offset: evt_offset as u32,
            buf_offset: buf_offset as u32,
            area_len: area_len as u32,
        })
    }

    /// Total bytes of the area, a whole number of pages.
    pub fn area_len(&self) -> u32 {
        self.area_len
    }
    /// Size of each packet buffer.
    pub fn buf_size(&self) -> u32 {
        self.buf_size
    }
    /// Number of packet buffers.
    pub fn buf_count(&self) -> u32 {
        self.buf_count
    }
    /// Request queue entries.
    pub fn req_entries(&self) -> u32 {
        self.req_entries
    }
    /// Event queue entries.
    pub fn evt_entries(&self) -> u32 {
        self.evt_entries
    }
    /// Byte offset of buffer `index`, if there is such a buffer.
    pub fn buffer(&self, index: u32) -> Option<u32> {
        (index < self.buf_count).then(|| self.buf_offset + index * self.buf_size)
    }
    /// Byte offset of the request descriptor for queue `position`.
    pub fn request(&self, position: u32) -> u32 {
        self.req_offset + (position & (self.req_entries - 1)) * DESC_LEN
    }
    /// Byte offset of the event descriptor for queue `position`.
    pub fn event(&self, position: u32) -> u32 {
        self.evt_offset + (position & (self.evt_entries - 1)) * DESC_LEN
    }
    /// The [`Info`] block describing this layout.
    pub fn info(&self, bqi: u16, peer_bqi: u16, ifindex: u32, max_frame: u32) -> Info {
        Info {
            area_len: self.area_len,
            buf_offset: self.buf_offset,
            buf_size: self.buf_size,
            buf_count: self.buf_count,
            req_offset: self.req_offset,
            req_entries: self.req_entries,
            evt_offset: self.evt_offset,
            evt_entries: self.evt_entries,
            bqi,
            peer_bqi,
            ifindex,
            max_frame,
        }
    }
}

/// Number of entries between a consumer and a producer position, if the
/// producer is no more than `entries` ahead; `None` means one of them is
/// garbage.
pub fn pending(producer: u32, consumer: u32, entries: u32) -> Option<u32> {
    let n = producer.wrapping_sub(consumer);
    (n <= entries).then_some(n)
}

/// Size of the encoded [`Info`] block.
pub const INFO_LEN: usize = 56;

/// The control page's first bytes, written by the kernel at configuration
/// and returned by [`IOC_INFO`]: everything the application needs to find
/// its way in the area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Info {
    /// Bytes to map.
    pub area_len: u32,
    /// Byte offset of buffer 0.
    pub buf_offset: u32,
    /// Size of each buffer.
    pub buf_size: u32,
    /// Number of buffers.
    pub buf_count: u32,
    /// Byte offset of the request queue.
    pub req_offset: u32,
    /// Request queue entries.
    pub req_entries: u32,
    /// Byte offset of the event queue.
    pub evt_offset: u32,
    /// Event queue entries.
    pub evt_entries: u32,
    /// The endpoint's own buffer queue index.
    pub bqi: u16,
    /// The peer's index (0: none).
    pub peer_bqi: u16,
    /// The net device's interface index.
    pub ifindex: u32,
    /// Largest frame the device sends (MTU plus Ethernet header).
    pub max_frame: u32,
}

impl Info {
    /// Encodes the block: magic, version, then the fields in order.
    pub fn to_bytes(&self) -> [u8; INFO_LEN] {
        let mut b = [0u8; INFO_LEN];
        let words = [
            AREA_MAGIC,
            ABI_VERSION,
            self.area_len,
            self.buf_offset,
            self.buf_size,
            self.buf_count,
            self.req_offset,
            self.req_entries,
            self.evt_offset,
            self.evt_entries,
            u32::from(self.bqi) | u32::from(self.peer_bqi) << 16,
            self.ifindex,
            self.max_frame,
            0,
        ];
        for (i, w) in words.iter().enumerate() {
            put32(&mut b, i * 4, *w);
        }
        b
    }

    /// Decodes a block, checking magic, version and that it describes a
    /// valid layout.
    pub fn from_bytes(b: &[u8; INFO_LEN]) -> Option<Self> {
        if get32(b, 0) != AREA_MAGIC || get32(b, 4) != ABI_VERSION {
            return None;
        }
        let w = |i: usize| get32(b, i * 4);
        let info = Info {
            area_len: w(2),
            buf_offset: w(3),
            buf_size: w(4),
            buf_count: w(5),
            req_offset: w(6),
            req_entries: w(7),
            evt_offset: w(8),
            evt_entries: w(9),
            bqi: w(10) as u16,
            peer_bqi: (w(10) >> 16) as u16,
            ifindex: w(11),
            max_frame: w(12),
        };
        let layout = Layout::new(info.buf_size, info.buf_count, info.req_entries, info.evt_entries)?;
        (layout.info(info.bqi, info.peer_bqi, info.ifindex, info.max_frame) == info).then_some(info)
    }
}

// ---------------------------------------------------------------------------
// Descriptors.

/// A request from the application.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Send the `len`-byte frame at the start of `buffer`; `cookie` comes
    /// back in an error event if the frame is refused.
    Send {
        /// Buffer index.
        buffer: u32,
        /// Frame length.
        len: u32,
        /// The application's tag for this send.
        cookie: u32,
    },
    /// Give `buffer` to the receive pool.
    Refill {
        /// Buffer index.
        buffer: u32,
    },
}

/// Why a request descriptor was refused; carried in the `code` of a
/// [`EventKind::BadRequest`] event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum DescError {
    /// Unknown kind, or non-zero flags or reserved fields.
    Kind = 1,
    /// A buffer index past the area's buffers.
    Buffer = 2,
    /// A send shorter than an Ethernet header or longer than a buffer.
    Length = 3,
    /// A buffer the kernel holds (already in the receive pool).
    NotOwned = 4,
}

const REQUEST_SEND: u16 = 1;
const REQUEST_REFILL: u16 = 2;

impl Request {
    /// Encodes a descriptor.
    pub fn to_bytes(&self) -> [u8; DESC_LEN as usize] {
        let mut b = [0u8; DESC_LEN as usize];
        let (kind, buffer, len, cookie) = match *self {
            Request::Send { buffer, len, cookie } => (REQUEST_SEND, buffer, len, cookie),
            Request::Refill { buffer } => (REQUEST_REFILL, buffer, 0, 0),
        };
        b[0..2].copy_from_slice(&kind.to_ne_bytes());
        put32(&mut b, 4, buffer);
        put32(&mut b, 8, len);
        put32(&mut b, 12, cookie);
        b
    }

    /// Whether a descriptor claims to be a send, valid or not: every such
    /// descriptor counts in [`SENDS_DONE`] once taken, so an application
    /// that reclaims buffers from that count never drifts.
    pub fn claims_send(b: &[u8; DESC_LEN as usize]) -> bool {
        u16::from_ne_bytes([b[0], b[1]]) == REQUEST_SEND
    }

    /// Decodes and validates a descriptor against the endpoint's layout
    /// (ownership is the kernel's to check).
    pub fn parse(b: &[u8; DESC_LEN as usize], layout: &Layout) -> Result<Self, DescError> {
        let kind = u16::from_ne_bytes([b[0], b[1]]);
        let flags = u16::from_ne_bytes([b[2], b[3]]);
        let (buffer, len, cookie) = (get32(b, 4), get32(b, 8), get32(b, 12));
        if flags != 0 {
            return Err(DescError::Kind);
        }
        if buffer >= layout.buf_count {
            return Err(DescError::Buffer);
        }
        match kind {
            REQUEST_SEND => {
                if (len as usize) < ETH_HEADER_LEN || len > layout.buf_size {
                    return Err(DescError::Length);
                }
                Ok(Request::Send { buffer, len, cookie })
            }
            REQUEST_REFILL if len == 0 && cookie == 0 => Ok(Request::Refill { buffer }),
            _ => Err(DescError::Kind),
        }
    }
}

/// In a [`EventKind::Received`] event's `code`: the frame's transport
/// checksum needs no check. The device verified it, or a sender on this
/// host left it to be computed and the frame crossed no wire; then the
/// checksum field holds only the pseudo-header's sum, and a protocol
/// library must not reject the frame for it. Without the flag the library
/// checks the checksum itself.
pub const RX_CHECKSUM_TRUSTED: u16 = 1;

/// What an event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum EventKind {
    /// A frame of `len` bytes arrived in `buffer`, which is now the
    /// application's (`code`: [`RX_CHECKSUM_TRUSTED`] or 0).
    Received = 1,
    /// The send with `cookie` did not match the template (`code`: a
    /// [`Reject`]); nothing was sent.
    SendRefused = 2,
    /// A request descriptor was refused (`code`: a [`DescError`]; `cookie`:
    /// its queue position).
    BadRequest = 3,
    /// A ring index was out of range (`code` 1: the request head, 2: the
    /// event tail); the kernel took nothing from the queue.
    BadIndex = 4,
    /// The device went away; the endpoint has ended.
    Ended = 5,
}

/// An event for the application.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// Reason code, by kind.
    pub code: u16,
    /// Buffer index: of the frame ([`EventKind::Received`]) or of the
    /// refused send ([`EventKind::SendRefused`]); else 0.
    pub buffer: u32,
    /// Frame length ([`EventKind::Received`]) or the send's cookie.
    pub value: u32,
}

impl Event {
    /// The body: every byte but the leading `seq` word, which the kernel
    /// writes last.
    pub fn body(&self) -> [u8; DESC_LEN as usize - 4] {
        let mut b = [0u8; DESC_LEN as usize - 4];
        b[0..2].copy_from_slice(&(self.kind as u16).to_ne_bytes());
        b[2..4].copy_from_slice(&self.code.to_ne_bytes());
        put32(&mut b, 4, self.buffer);
        put32(&mut b, 8, self.value);
        b
    }

    /// Decodes an event's body (as [`Event::body`] lays it out).
    pub fn parse_body(b: &[u8; DESC_LEN as usize - 4]) -> Option<Self> {
        let kind = match u16::from_ne_bytes([b[0], b[1]]) {
            1 => EventKind::Received,
            2 => EventKind::SendRefused,
            3 => EventKind::BadRequest,
            4 => EventKind::BadIndex,
            5 => EventKind::Ended,
            _ => return None,
        };
        Some(Event { kind, code: u16::from_ne_bytes([b[2], b[3]]), buffer: get32(b, 4), value: get32(b, 8) })
    }
}

/// The `seq` word that marks the event at `position` ready.
pub const fn event_seq(position: u32) -> u32 {
    position.wrapping_add(1)
}

// ---------------------------------------------------------------------------
// ioctl commands (the generic Linux encoding: direction, size, type, number).

const IOC_WRITE: u32 = 1;
const IOC_READ: u32 = 2;
const IOC_TYPE: u32 = b'B' as u32;

const fn ioc(dir: u32, nr: u32, size: usize) -> u32 {
    dir << 30 | (size as u32) << 16 | IOC_TYPE << 8 | nr
}

/// Configure the endpoint (`CAP_NET_ADMIN`; once): argument an
/// [`EndpointConfig`] of [`CONFIG_LEN`] bytes.
pub const IOC_CONFIGURE: u32 = ioc(IOC_WRITE, 1, CONFIG_LEN);
/// Read the endpoint's [`Info`] ([`INFO_LEN`] bytes).
pub const IOC_INFO: u32 = ioc(IOC_READ, 2, INFO_LEN);
/// Doorbell: take every pending request. No argument.
pub const IOC_KICK: u32 = ioc(0, 3, 0);
/// Read the endpoint's counters ([`STATS_LEN`] bytes, [`Stat`] order).
pub const IOC_STATS: u32 = ioc(IOC_READ, 4, STATS_LEN);
/// Read the counters of the endpoint's device ([`DEVICE_STATS_LEN`] bytes,
/// [`DeviceStat`] order).
pub const IOC_DEVICE_STATS: u32 = ioc(IOC_READ, 5, DEVICE_STATS_LEN);

/// An endpoint's counters, in the order [`IOC_STATS`] returns them (each a
/// native-endian `u64`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Stat {
    /// Frames delivered into the endpoint's buffers.
    Delivered = 0,
    /// Frames dropped: the event queue was full.
    DroppedRingFull = 1,
    /// Frames dropped: the receive pool was empty.
    DroppedNoBuffer = 2,
    /// Frames dropped: larger than a buffer.
    DroppedTooBig = 3,
    /// Frames sent.
    Sent = 4,
    /// Sends refused by the template.
    TemplateRejects = 5,
    /// Request descriptors refused, and ring indices out of range.
    BadRequests = 6,
    /// Sends the device did not take (queue full or down).
    SendErrors = 7,
    /// Events lost because the event queue was full.
    EventsLost = 8,
    /// Doorbell calls.
    Kicks = 9,
}

/// Number of counters in [`Stat`].
pub const STAT_COUNT: usize = 10;
/// Size of the [`IOC_STATS`] answer.
pub const STATS_LEN: usize = STAT_COUNT * 8;
/// Counter names, in [`Stat`] order, as tools print them.
pub const STAT_NAMES: [&str; STAT_COUNT] = [
    "delivered",
    "dropped.ring_full",
    "dropped.no_buffer",
    "dropped.too_big",
    "sent",
    "template_rejects",
    "bad_requests",
    "send_errors",
    "events_lost",
    "kicks",
];

/// A device's demultiplexer counters, in the order [`IOC_DEVICE_STATS`]
/// returns them (each a native-endian `u64`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum DeviceStat {
    /// Frames delivered to an endpoint.
    Delivered = 0,
    /// Frames passed to the stack (no endpoint's flow, BQI 0, not for this
    /// host, other protocols, fragments).
    ToStack = 1,
    /// Frames under the link header for an index no endpoint holds, and
    /// not carrying IPv4 (raw endpoint frames): dropped.
    NoEndpoint = 2,
    /// Frames with a malformed link header: dropped.
    Malformed = 3,
    /// Frames whose demultiplexing was timed (one in [`DEMUX_SAMPLE`]).
    DemuxSamples = 4,
    /// Nanoseconds those timed frames spent being classified and looked up,
    /// each interval including one reading of the clock.
    DemuxNanos = 5,
    /// Nanoseconds of an empty interval measured beside each timed frame
    /// (two readings of the clock back to back): what the clock itself adds
    /// to [`DeviceStat::DemuxNanos`], to be subtracted.
    ClockNanos = 6,
    /// Frames under the link header carrying IPv4 whose index named no
    /// endpoint of their flow (held by nobody, BQI 0, or another flow's
    /// endpoint): the link header is stripped and the packet goes by its
    /// flow, as plain IPv4 would (to an endpoint, or to the stack).
    Unconfirmed = 7,
}

/// Number of counters in [`DeviceStat`].
pub const DEVICE_STAT_COUNT: usize = 8;
/// Size of the [`IOC_DEVICE_STATS`] answer.
pub const DEVICE_STATS_LEN: usize = DEVICE_STAT_COUNT * 8;
/// Device counter names, in [`DeviceStat`] order.
pub const DEVICE_STAT_NAMES: [&str; DEVICE_STAT_COUNT] =
    ["delivered", "to_stack", "dropped.no_endpoint", "dropped.malformed", "demux.samples", "demux.ns", "demux.clock_ns", "unconfirmed"];
/// One frame in this many has its demultiplexing timed (the clock reads
/// cost more than the lookup; sampling keeps them off most frames).
pub const DEMUX_SAMPLE: u64 = 64;

// ---------------------------------------------------------------------------
// Index exchange between registries (seed 003 §3.4).
//
// Before a TCP connection (or a connected UDP endpoint) is configured, the
// client host's registry asks the server host's registry, over UDP to
// [`EXCHANGE_PORT`], which index the server's endpoint for that flow has.
// The answer becomes the client endpoint's `peer_bqi`, so its frames go
// under the link header straight to the server endpoint's ring; the server
// side learns the client's index from those frames' link headers (the
// source index). No answer, an answer of 0 or an ICMP refusal (no registry
// there) means the peer does not speak BQI: plain IPv4, demultiplexed by
// flow. The messages are in network byte order.

/// UDP port registries answer index queries on: RFC 4727's first
/// experimental port, below 1024 so that only a privileged process of the
/// peer host can answer from it.
pub const EXCHANGE_PORT: u16 = 1021;
/// Length of an [`IndexMessage`].
pub const EXCHANGE_LEN: usize = 28;
/// First bytes of every [`IndexMessage`].
pub const EXCHANGE_MAGIC: [u8; 4] = *b"BQIX";
/// Version of the exchange this file defines.
pub const EXCHANGE_VERSION: u8 = 1;

/// What an index message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ExchangeOp {
    /// Client registry to server registry: the index of the endpoint
    /// serving `server` for `client`?
    Query = 1,
    /// The reply: `index`, or 0 if no endpoint there speaks BQI.
    Answer = 2,
}

/// Why bytes are not an [`IndexMessage`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExchangeError {
    /// Not [`EXCHANGE_LEN`] bytes.
    Length,
    /// Not [`EXCHANGE_MAGIC`] and [`EXCHANGE_VERSION`].
    Version,
    /// An unknown operation or protocol.
    Kind,
    /// An index at or above [`MAX_BQI`], a query carrying an index, a port
    /// 0, or reserved bytes not zero.
    Field,
}

/// A query or answer of the index exchange. Laid out as: magic (4),
/// version (1), op (1), IP protocol (1), reserved 0 (1), nonce (4), client
/// IPv4 (4), server IPv4 (4), client port (2), server port (2), index (2),
/// reserved 0 (2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexMessage {
    /// Query or answer.
    pub op: ExchangeOp,
    /// [`IPPROTO_TCP`] or [`IPPROTO_UDP`].
    pub proto: u8,
    /// Chosen by the client's registry; an answer carries the query's.
    pub nonce: u32,
    /// The client end (the side that asks).
    pub client: ([u8; 4], u16),
    /// The server end (an endpoint whose remote is open).
    pub server: ([u8; 4], u16),
    /// In an answer, the server endpoint's index (0: none speaks BQI); 0
    /// in a query.
    pub index: u16,
}

impl IndexMessage {
    /// A query for the endpoint serving `server` for `client`.
    pub fn query(proto: u8, nonce: u32, client: ([u8; 4], u16), server: ([u8; 4], u16)) -> Self {
        IndexMessage { op: ExchangeOp::Query, proto, nonce, client, server, index: 0 }
    }

    /// The answer to this query.
    pub fn answer(&self, index: u16) -> Self {
        IndexMessage { op: ExchangeOp::Answer, index, ..*self }
    }

    /// Whether `reply` answers this query (same nonce, protocol and ends).
    pub fn is_answered_by(&self, reply: &IndexMessage) -> bool {
        reply.op == ExchangeOp::Answer
            && reply.nonce == self.nonce
            && reply.proto == self.proto
            && reply.client == self.client
            && reply.server == self.server
    }

    /// Encodes the message.
    pub fn to_bytes(&self) -> [u8; EXCHANGE_LEN] {
        let mut b = [0u8; EXCHANGE_LEN];
        b[..4].copy_from_slice(&EXCHANGE_MAGIC);
        b[4] = EXCHANGE_VERSION;
        b[5] = self.op as u8;
        b[6] = self.proto;
        b[8..12].copy_from_slice(&self.nonce.to_be_bytes());
        b[12..16].copy_from_slice(&self.client.0);
        b[16..20].copy_from_slice(&self.server.0);
        b[20..22].copy_from_slice(&self.client.1.to_be_bytes());
        b[22..24].copy_from_slice(&self.server.1.to_be_bytes());
        b[24..26].copy_from_slice(&self.index.to_be_bytes());
        b
    }

    /// Decodes a received datagram; everything is checked (it comes from
    /// the network).
    pub fn parse(b: &[u8]) -> Result<Self, ExchangeError> {
        if b.len() != EXCHANGE_LEN {
            return Err(ExchangeError::Length);
        }
        if b[..4] != EXCHANGE_MAGIC || b[4] != EXCHANGE_VERSION {
            return Err(ExchangeError::Version);
        }
        let op = match b[5] {
            1 => ExchangeOp::Query,
            2 => ExchangeOp::Answer,
            _ => return Err(ExchangeError::Kind),
        };
        let proto = b[6];
        if proto != IPPROTO_TCP && proto != IPPROTO_UDP {
            return Err(ExchangeError::Kind);
        }
        let ip = |at: usize| [b[at], b[at + 1], b[at + 2], b[at + 3]];
        let m = IndexMessage {
            op,
            proto,
            nonce: u32::from_be_bytes(ip(8)),
            client: (ip(12), be16(b, 20)),
            server: (ip(16), be16(b, 22)),
            index: be16(b, 24),
        };
        let reserved_clear = b[7] == 0 && b[26] == 0 && b[27] == 0;
        let index_ok = m.index < MAX_BQI && (op == ExchangeOp::Answer || m.index == 0);
        if !reserved_clear || !index_ok || m.client.1 == 0 || m.server.1 == 0 {
            return Err(ExchangeError::Field);
        }
        Ok(m)
    }
}
