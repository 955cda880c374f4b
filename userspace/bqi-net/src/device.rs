//! A BQI endpoint as smoltcp's network device: IP packets in and out, the
//! Ethernet header added and stripped here.
//!
//! smoltcp runs on the IP medium because ARP cannot work through an
//! endpoint (replies match no flow and go to the kernel's stack): the
//! registry resolves the peer's link-layer address at set-up, and the
//! source address of each received frame teaches the rest (a listening
//! endpoint's clients).
//!
//! Link header (seed 003 §3.4): an endpoint whose registry learned the
//! peer's index sends every packet under the polynic link header, to that
//! index, so the peer's kernel hands it to the peer endpoint by index. An
//! endpoint whose remote is open (a listener, unconnected UDP) learns each
//! peer's index from the source index of that peer's framed packets and
//! frames its answers to it; a plain packet from a peer makes it forget
//! the index (the peer endpoint is gone, or never spoke BQI), so nothing is
//! framed to an index that no longer holds. Packets are then 8 bytes
//! shorter than the device's MTU allows, which the IP MTU given to smoltcp
//! accounts for.
//!
//! Checksums: smoltcp computes them on send; on receive this adapter checks
//! the transport checksum only of frames the kernel does not vouch for
//! (`checksum_trusted`): a frame a local sender left to be summed carries
//! only the pseudo-header's sum, and must not be rejected for it.

use bqi::{Endpoint, Next};
use polynic_abi::bqi::{LinkHeader, ETH_HEADER_LEN, ETH_P_BQI, LINK_HEADER_LEN};
use smoltcp::phy::{self, Checksum, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::{IpAddress, IpProtocol, Ipv4Packet, TcpPacket, UdpPacket};
use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddrV4};

/// Ethertype of IPv4.
const ETH_P_IP: u16 = 0x0800;

/// Counters of what the adapter dropped, for diagnosis.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceCounters {
    /// Frames received and handed to the stack.
    pub received: u64,
    /// Frames sent.
    pub sent: u64,
    /// Received frames dropped: not IPv4, too short, or a bad checksum.
    pub malformed: u64,
    /// Frames not sent: the peer's link-layer address is unknown.
    pub no_neighbour: u64,
    /// Frames not sent: no send buffer was free.
    pub no_buffer: u64,
    /// Of the frames sent, those under the link header.
    pub framed_sent: u64,
    /// Of the frames received, those under the link header.
    pub framed_received: u64,
}

/// The adapter.
pub struct EndpointDevice {
    endpoint: Endpoint,
    own_mac: [u8; 6],
    /// Link-layer addresses by IPv4 address: the registry's answer and
    /// what received frames showed.
    neighbours: HashMap<Ipv4Addr, [u8; 6]>,
    /// IP MTU.
    mtu: usize,
    /// Peers whose reset this adapter saw (checked when a connection
    /// closes, to tell a reset from a time-out).
    resets: HashSet<SocketAddrV4>,
    ended: bool,
    counters: DeviceCounters,
    /// Frames queued since the last flush.
    queued: usize,
    /// The endpoint's own index (the source of framed packets).
    own_bqi: u16,
    /// The peer's index, when the registry exchanged it: every packet is
    /// framed to it.
    peer_bqi: u16,
    /// For an endpoint whose remote is open: each peer's index, as its
    /// framed packets named it.
    framed_peers: Option<HashMap<SocketAddrV4, u16>>,
}

impl EndpointDevice {
    /// Wraps `endpoint`, sending from `own_mac` on a device whose MTU is
    /// `mtu`; `open` if the endpoint's remote is open (it then learns its
    /// peers' indices).
    pub fn new(endpoint: Endpoint, own_mac: [u8; 6], mtu: usize, open: bool) -> Self {
        let info = endpoint.info();
        let room = (info.buf_size as usize).saturating_sub(ETH_HEADER_LEN);
        let may_frame = open || info.peer_bqi != 0;
        let mtu = if may_frame { mtu.saturating_sub(LINK_HEADER_LEN) } else { mtu };
        EndpointDevice {
            own_bqi: info.bqi,
            peer_bqi: info.peer_bqi,
            framed_peers: open.then(HashMap::new),
            endpoint,
            own_mac,
            neighbours: HashMap::new(),
            mtu: mtu.min(room),
            resets: HashSet::new(),
            ended: false,
            counters: DeviceCounters::default(),
            queued: 0,
        }
    }

    /// Teaches the link-layer address of `ip`.
    pub fn learn(&mut self, ip: Ipv4Addr, mac: [u8; 6]) {
        self.neighbours.insert(ip, mac);
    }

    /// Whether the link-layer address of `ip` is known.
    pub fn knows(&self, ip: Ipv4Addr) -> bool {
        self.neighbours.contains_key(&ip)
    }

    /// The IP MTU.
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// The endpoint (its file, for readiness).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Whether the endpoint has ended (its device went away).
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Whether a reset from `peer` was seen; forgets it.
    pub fn take_reset(&mut self, peer: SocketAddrV4) -> bool {
        self.resets.remove(&peer)
    }

    /// What was counted.
    pub fn counters(&self) -> DeviceCounters {
        self.counters
    }

    /// Makes queued frames visible to the kernel (one doorbell at most).
    pub fn flush(&mut self) -> bqi::Result<()> {
        if self.queued == 0 {
            return Ok(());
        }
        self.queued = 0;
        self.endpoint.flush()
    }

    /// The IP packet of the next received frame, owned (the endpoint's
    /// buffer goes back to the pool at once), or `None` if none is ready.
    fn next_packet(&mut self) -> Option<Vec<u8>> {
        loop {
            match self.endpoint.poll_event()? {
                Next::Frame(r) => {
                    let packet = accept(self.endpoint.frame(&r), r.checksum_trusted, &mut self.neighbours, &mut self.resets)
                        .map(|(packet, peer, link)| {
                            if link.is_some() {
                                self.counters.framed_received += 1;
                            }
                            if let (Some(peers), Some(peer)) = (self.framed_peers.as_mut(), peer) {
                                match link {
                                    Some(l) => peers.insert(peer, l.src_bqi),
                                    None => peers.remove(&peer),
                                };
                            }
                            packet
                        });
                    // A refill cannot fail but by the endpoint ending.
                    if self.endpoint.release(r).is_err() {
                        self.ended = true;
                    }
                    match packet {
                        Some(p) => {
                            self.counters.received += 1;
                            return Some(p);
                        }
                        None => self.counters.malformed += 1,
                    }
                }
                Next::Ended => {
                    self.ended = true;
                    return None;
                }
                // A refused send or request: the protocol retransmits.
                Next::Error(_) => {}
            }
        }
    }

    /// The peer index to frame `packet` with, if any.
    /// `packet` is smoltcp's, so well formed; its port is read only when a
    /// learned index may depend on it.
    fn index_for(&self, packet: &[u8]) -> Option<u16> {
        if self.peer_bqi != 0 {
            return Some(self.peer_bqi);
        }
        let peers = self.framed_peers.as_ref().filter(|p| !p.is_empty())?;
        peers.get(&destination(packet)?).copied()
    }

    /// Queues `buf`, whose IP packet smoltcp wrote after the room left
    /// for the Ethernet and link headers, which are filled in here (the
    /// link header only if the packet is framed; otherwise the frame
    /// starts later in `buf`).
    fn send_frame(&mut self, buf: &mut [u8]) {
        const AT: usize = ETH_HEADER_LEN + LINK_HEADER_LEN;
        let Some(dst) = buf.get(AT + 16..AT + 20).map(|b| Ipv4Addr::new(b[0], b[1], b[2], b[3])) else {
            return;
        };
        let Some(mac) = self.neighbours.get(&dst).copied() else {
            self.counters.no_neighbour += 1;
            return;
        };
        let index = self.index_for(&buf[AT..]);
        let frame = match index {
            Some(dst_bqi) => {
                buf[12..14].copy_from_slice(&ETH_P_BQI.to_be_bytes());
                let link = LinkHeader { dst_bqi, src_bqi: self.own_bqi, inner: ETH_P_IP };
                // The buffer has room for the header by construction.
                let _ = link.encode(&mut buf[ETH_HEADER_LEN..AT]);
                &mut buf[..]
            }
            None => {
                buf[LINK_HEADER_LEN + 12..AT].copy_from_slice(&ETH_P_IP.to_be_bytes());
                &mut buf[LINK_HEADER_LEN..]
            }
        };
        frame[..6].copy_from_slice(&mac);
        frame[6..12].copy_from_slice(&self.own_mac);
        match self.endpoint.queue(frame) {
            Ok(()) => {
                self.queued += 1;
                self.counters.sent += 1;
                if index.is_some() {
                    self.counters.framed_sent += 1;
                }
            }
            Err(bqi::Error::Ended) => self.ended = true,
            // Lost like a frame on a busy wire; the protocol retransmits.
            Err(_) => self.counters.no_buffer += 1,
        }
    }
}

/// The destination address and port of an IPv4 UDP or TCP packet (port 0
/// for other protocols).
fn destination(packet: &[u8]) -> Option<SocketAddrV4> {
    let ip = Ipv4Packet::new_checked(packet).ok()?;
    let port = match ip.next_header() {
        IpProtocol::Tcp | IpProtocol::Udp => ip.payload().get(2..4).map_or(0, |p| u16::from_be_bytes([p[0], p[1]])),
        _ => 0,
    };
    Some(SocketAddrV4::new(ip.dst_addr(), port))
}

/// Checks a received frame and returns its IP packet, the sending end
/// (UDP and TCP) and the link header it came under, if any; learns the
/// sender's link-layer address in `neighbours` and notes resets.
fn accept(
    frame: &[u8],
    trusted: bool,
    neighbours: &mut HashMap<Ipv4Addr, [u8; 6]>,
    resets: &mut HashSet<SocketAddrV4>,
) -> Option<(Vec<u8>, Option<SocketAddrV4>, Option<LinkHeader>)> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let (link, at) = match ethertype {
        ETH_P_IP => (None, ETH_HEADER_LEN),
        ETH_P_BQI => {
            let link = LinkHeader::parse(frame.get(ETH_HEADER_LEN..)?).ok()?;
            if link.inner != ETH_P_IP {
                return None;
            }
            (Some(link), ETH_HEADER_LEN + LINK_HEADER_LEN)
        }
        _ => return None,
    };
    let ip = Ipv4Packet::new_checked(&frame[at..]).ok()?;
    if !ip.verify_checksum() {
        return None;
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    // The packet as the IP header bounds it (frames may be padded).
    let total = usize::from(ip.total_len());
    let payload = ip.payload();
    let (s, d) = (IpAddress::Ipv4(src), IpAddress::Ipv4(dst));
    let peer = match ip.next_header() {
        IpProtocol::Tcp => {
            let tcp = TcpPacket::new_checked(payload).ok()?;
            if !trusted && !tcp.verify_checksum(&s, &d) {
                return None;
            }
            let peer = SocketAddrV4::new(src, tcp.src_port());
            if tcp.rst() {
                resets.insert(peer);
            }
            Some(peer)
        }
        IpProtocol::Udp => {
            let udp = UdpPacket::new_checked(payload).ok()?;
            if !trusted && !udp.verify_checksum(&s, &d) {
                return None;
            }
            Some(SocketAddrV4::new(src, udp.src_port()))
        }
        _ => None,
    };
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&frame[6..12]);
    neighbours.insert(src, mac);
    Some((frame[at..at + total].to_vec(), peer, link))
}

/// A received packet, owned.
pub struct RxToken(Vec<u8>);

/// Room to send one packet.
pub struct TxToken<'a>(&'a mut EndpointDevice);

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        // One buffer for the whole frame: the packet goes after room for
        // the Ethernet and link headers.
        let mut frame = vec![0u8; ETH_HEADER_LEN + LINK_HEADER_LEN + len];
        let r = f(&mut frame[ETH_HEADER_LEN + LINK_HEADER_LEN..]);
        self.0.send_frame(&mut frame);
        r
    }
}

impl phy::Device for EndpointDevice {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(RxToken, TxToken<'_>)> {
        let packet = self.next_packet()?;
        Some((RxToken(packet), TxToken(self)))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_>> {
        if self.ended { None } else { Some(TxToken(self)) }
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = self.mtu;
        let mut sums = ChecksumCapabilities::default();
        // Transport checksums of untrusted frames are checked in `accept`.
        sums.tcp = Checksum::Tx;
        sums.udp = Checksum::Tx;
        caps.checksum = sums;
        caps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet frame with a UDP packet from 10.0.0.2:5000 to
    /// 10.0.0.1:4000 (checksums zero: the kernel vouches for them), under
    /// `link` if given.
    fn frame(link: Option<LinkHeader>) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        match link {
            Some(l) => {
                f[12..14].copy_from_slice(&ETH_P_BQI.to_be_bytes());
                let mut h = [0u8; LINK_HEADER_LEN];
                l.encode(&mut h).unwrap();
                f.extend_from_slice(&h);
            }
            None => f[12..14].copy_from_slice(&ETH_P_IP.to_be_bytes()),
        }
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&(20u16 + 8 + 4).to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&[10, 0, 0, 2]);
        ip[16..20].copy_from_slice(&[10, 0, 0, 1]);
        let mut sum: u32 = ip.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[0x13, 0x88, 0x0f, 0xa0, 0, 12, 0, 0, b'p', b'i', b'n', b'g']);
        f
    }

    fn take(f: &[u8]) -> Option<(Vec<u8>, Option<SocketAddrV4>, Option<LinkHeader>)> {
        accept(f, true, &mut HashMap::new(), &mut HashSet::new())
    }

    #[test]
    fn framed_and_plain_packets_come_out_the_same_with_their_sender() {
        let link = LinkHeader { dst_bqi: 3, src_bqi: 77, inner: ETH_P_IP };
        let (plain, from, none) = take(&frame(None)).unwrap();
        let (framed, from2, some) = take(&frame(Some(link))).unwrap();
        assert_eq!(plain, framed);
        assert_eq!(plain.len(), 32);
        assert_eq!(from, Some(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 5000)));
        assert_eq!(from, from2);
        assert_eq!((none, some), (None, Some(link)));
        assert_eq!(destination(&plain), Some(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 4000)));
    }

    #[test]
    fn frames_that_are_not_ipv4_under_either_header_are_refused() {
        let mut raw = frame(Some(LinkHeader { dst_bqi: 3, src_bqi: 77, inner: 0x1234 }));
        assert!(take(&raw).is_none());
        raw[14] = 2; // link header version
        assert!(take(&raw).is_none());
        let mut arp = frame(None);
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert!(take(&arp).is_none());
        assert!(take(&frame(None)[..13]).is_none());
        let f = frame(Some(LinkHeader { dst_bqi: 3, src_bqi: 77, inner: ETH_P_IP }));
        assert!(take(&f[..f.len() - 1]).is_none());
    }
}
