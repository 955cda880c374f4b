//! A BQI endpoint as smoltcp's network device: IP packets in and out, the
//! Ethernet header added and stripped here.
//!
//! smoltcp runs on the IP medium because ARP cannot work through an
//! endpoint (replies match no flow and go to the kernel's stack): the
//! registry resolves the peer's link-layer address at set-up, and the
//! source address of each received frame teaches the rest (a listening
//! endpoint's clients).
//!
//! Checksums: smoltcp computes them on send; on receive this adapter checks
//! the transport checksum only of frames the kernel does not vouch for
//! (`checksum_trusted`): a frame a local sender left to be summed carries
//! only the pseudo-header's sum, and must not be rejected for it.

use bqi::{Endpoint, Next};
use polynic_abi::bqi::ETH_HEADER_LEN;
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
}

impl EndpointDevice {
    /// Wraps `endpoint`, sending from `own_mac` with an IP MTU of `mtu`.
    pub fn new(endpoint: Endpoint, own_mac: [u8; 6], mtu: usize) -> Self {
        let room = (endpoint.info().buf_size as usize).saturating_sub(ETH_HEADER_LEN);
        EndpointDevice {
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
                    let packet = accept(self.endpoint.frame(&r), r.checksum_trusted, &mut self.neighbours, &mut self.resets);
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

    /// Queues `frame`, whose IP packet smoltcp wrote after the room left
    /// for the Ethernet header, which is filled in here.
    fn send_frame(&mut self, frame: &mut [u8]) {
        let Some(dst) = frame.get(ETH_HEADER_LEN + 16..ETH_HEADER_LEN + 20).map(|b| Ipv4Addr::new(b[0], b[1], b[2], b[3]))
        else {
            return;
        };
        let Some(mac) = self.neighbours.get(&dst).copied() else {
            self.counters.no_neighbour += 1;
            return;
        };
        frame[..6].copy_from_slice(&mac);
        frame[6..12].copy_from_slice(&self.own_mac);
        frame[12..14].copy_from_slice(&ETH_P_IP.to_be_bytes());
        match self.endpoint.queue(frame) {
            Ok(()) => {
                self.queued += 1;
                self.counters.sent += 1;
            }
            Err(bqi::Error::Ended) => self.ended = true,
            // Lost like a frame on a busy wire; the protocol retransmits.
            Err(_) => self.counters.no_buffer += 1,
        }
    }
}

/// Checks a received frame and returns its IP packet; learns the
/// sender's link-layer address in `neighbours` and notes resets.
fn accept(
    frame: &[u8],
    trusted: bool,
    neighbours: &mut HashMap<Ipv4Addr, [u8; 6]>,
    resets: &mut HashSet<SocketAddrV4>,
) -> Option<Vec<u8>> {
    if frame.len() < ETH_HEADER_LEN || frame[12..14] != ETH_P_IP.to_be_bytes() {
        return None;
    }
    let ip = Ipv4Packet::new_checked(&frame[ETH_HEADER_LEN..]).ok()?;
    if !ip.verify_checksum() {
        return None;
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    // The packet as the IP header bounds it (frames may be padded).
    let total = usize::from(ip.total_len());
    let payload = ip.payload();
    let (s, d) = (IpAddress::Ipv4(src), IpAddress::Ipv4(dst));
    match ip.next_header() {
        IpProtocol::Tcp => {
            let tcp = TcpPacket::new_checked(payload).ok()?;
            if !trusted && !tcp.verify_checksum(&s, &d) {
                return None;
            }
            if tcp.rst() {
                resets.insert(SocketAddrV4::new(src, tcp.src_port()));
            }
        }
        IpProtocol::Udp => {
            let udp = UdpPacket::new_checked(payload).ok()?;
            if !trusted && !udp.verify_checksum(&s, &d) {
                return None;
            }
        }
        _ => {}
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&frame[6..12]);
    neighbours.insert(src, mac);
    Some(frame[ETH_HEADER_LEN..ETH_HEADER_LEN + total].to_vec())
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
        // One buffer for the whole frame: the packet goes after the header.
        let mut frame = vec![0u8; ETH_HEADER_LEN + len];
        let r = f(&mut frame[ETH_HEADER_LEN..]);
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
