// SPDX-License-Identifier: GPL-2.0

//! Ethernet link layer: MAC addresses, ethertypes and the Ethernet header.
//!
//! These are plain values, parsed from and written to byte slices, so that
//! code handling frames never reinterprets packet memory as a Rust type.
//!
//! C header: [`include/uapi/linux/if_ether.h`](srctree/include/uapi/linux/if_ether.h)

use crate::{bindings, error::code::EINVAL, error::Result, fmt};

/// Length of a MAC address in bytes.
pub const ALEN: usize = bindings::ETH_ALEN as usize;
/// Length of the Ethernet header (destination, source, ethertype).
pub const HLEN: usize = bindings::ETH_HLEN as usize;
/// Smallest Ethernet frame without FCS; shorter frames are padded to it.
pub const ZLEN: usize = bindings::ETH_ZLEN as usize;
/// Largest payload of a standard (non-jumbo) frame.
pub const DATA_LEN: usize = bindings::ETH_DATA_LEN as usize;

/// A 48-bit Ethernet MAC address.
///
/// # Examples
///
/// ```
/// use kernel::net::ethernet::MacAddr;
///
/// let a = MacAddr::new([0x02, 0, 0, 0, 0, 1]);
/// assert!(a.is_valid_unicast());
/// assert!(a.is_locally_administered());
/// assert!(MacAddr::BROADCAST.is_multicast());
/// assert!(!MacAddr::ZERO.is_valid_unicast());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
#[repr(transparent)]
pub struct MacAddr(pub [u8; ALEN]);

impl MacAddr {
    /// The all-ones broadcast address.
    pub const BROADCAST: MacAddr = MacAddr([0xff; ALEN]);
    /// The all-zeroes address, which no interface may use.
    pub const ZERO: MacAddr = MacAddr([0; ALEN]);

    /// An address from its six bytes, in wire order.
    pub const fn new(bytes: [u8; ALEN]) -> Self {
        MacAddr(bytes)
    }

    /// Reads an address from the first [`ALEN`] bytes of `b`.
    pub fn from_slice(b: &[u8]) -> Option<Self> {
        let mut a = [0u8; ALEN];
        a.copy_from_slice(b.get(..ALEN)?);
        Some(MacAddr(a))
    }

    /// Reads the text form `aa:bb:cc:dd:ee:ff` (two hex digits per octet,
    /// either case), as configuration interfaces take it.
    ///
    /// ```
    /// use kernel::net::ethernet::MacAddr;
    ///
    /// let m = MacAddr::parse_text("02:00:5E:10:00:01");
    /// assert_eq!(m, Some(MacAddr::new([2, 0, 0x5e, 0x10, 0, 1])));
    /// assert_eq!(MacAddr::parse_text("02:00:5e:10:00"), None);
    /// assert_eq!(MacAddr::parse_text("02:00:5e:10:00:01:02"), None);
    /// assert_eq!(MacAddr::parse_text("2:00:5e:10:00:01"), None);
    /// ```
    pub fn parse_text(s: &str) -> Option<Self> {
        let mut bytes = [0u8; ALEN];
        let mut parts = s.split(':');
        for b in bytes.iter_mut() {
            let part = parts.next().filter(|p| p.len() == 2)?;
            *b = u8::from_str_radix(part, 16).ok()?;
        }
        parts.next().is_none().then_some(MacAddr(bytes))
    }

    /// The address bytes, in wire order.
    pub const fn as_bytes(&self) -> &[u8; ALEN] {
        &self.0
    }

    /// Group address: the I/G bit of the first octet is set (this includes
    /// broadcast).
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 1 != 0
    }

    /// The broadcast address.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// The all-zeroes address.
    pub fn is_zero(&self) -> bool {
        *self == Self::ZERO
    }

    /// Locally administered: the U/L bit of the first octet is set.
    pub const fn is_locally_administered(&self) -> bool {
        self.0[0] & 2 != 0
    }

    /// An address an interface may own: neither multicast nor all-zeroes
    /// (the kernel's `is_valid_ether_addr`).
    pub fn is_valid_unicast(&self) -> bool {
        !self.is_multicast() && !self.is_zero()
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An ethertype (or 802.3 length, below [`EtherType::MIN`]) in host order.
///
/// # Examples
///
/// ```
/// use kernel::net::ethernet::EtherType;
///
/// assert_eq!(EtherType::IPV4.to_be_bytes(), [0x08, 0x00]);
/// assert!(!EtherType(1500).is_ethertype()); // an 802.3 length
/// assert!(EtherType(0x0666).is_ethertype());
/// assert!(EtherType(0x88a2).is_ethertype());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[repr(transparent)]
pub struct EtherType(pub u16);

impl EtherType {
    /// IPv4.
    pub const IPV4: EtherType = EtherType(bindings::ETH_P_IP as u16);
    /// ARP.
    pub const ARP: EtherType = EtherType(bindings::ETH_P_ARP as u16);
    /// IPv6.
    pub const IPV6: EtherType = EtherType(bindings::ETH_P_IPV6 as u16);
    /// Smallest value that is an ethertype; below it the field is an 802.3
    /// length (the kernel's `ETH_P_802_3_MIN`).
    pub const MIN: u16 = bindings::ETH_P_802_3_MIN as u16;

    /// The value in network byte order, as it appears on the wire and in
    /// `skb->protocol`.
    pub const fn to_be(self) -> u16 {
        self.0.to_be()
    }

    /// The two wire bytes.
    pub const fn to_be_bytes(self) -> [u8; 2] {
        self.0.to_be_bytes()
    }

    /// Whether the value is an ethertype rather than an 802.3 length.
    pub const fn is_ethertype(self) -> bool {
        self.0 >= Self::MIN
    }
}

/// An Ethernet header, as a value.
///
/// # Examples
///
/// ```
/// use kernel::net::ethernet::{EthHdr, EtherType, MacAddr, HLEN};
///
/// let h = EthHdr {
///     dst: MacAddr::BROADCAST,
///     src: MacAddr::new([2, 0, 0, 0, 0, 7]),
///     ethertype: EtherType(0x88b5),
/// };
/// let mut frame = [0u8; HLEN + 4];
/// h.write(&mut frame)?;
/// assert_eq!(&frame[12..14], &[0x88, 0xb5]);
/// assert_eq!(EthHdr::parse(&frame), Some(h));
/// assert_eq!(EthHdr::parse(&frame[..HLEN - 1]), None);
/// assert!(h.write(&mut frame[..HLEN - 1]).is_err());
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct EthHdr {
    /// Destination address.
    pub dst: MacAddr,
    /// Source address.
    pub src: MacAddr,
    /// Type of the payload.
    pub ethertype: EtherType,
}

impl EthHdr {
    /// Parses the header at the start of `frame`; `None` if it is shorter
    /// than [`HLEN`].
    pub fn parse(frame: &[u8]) -> Option<Self> {
        let h = frame.get(..HLEN)?;
        Some(EthHdr {
            dst: MacAddr::from_slice(&h[0..ALEN])?,
            src: MacAddr::from_slice(&h[ALEN..2 * ALEN])?,
            ethertype: EtherType(u16::from_be_bytes([h[12], h[13]])),
        })
    }

    /// Writes the header into the first [`HLEN`] bytes of `out`; fails with
    /// `EINVAL` if `out` is shorter.
    pub fn write(&self, out: &mut [u8]) -> Result {
        let out = out.get_mut(..HLEN).ok_or(EINVAL)?;
        out[0..ALEN].copy_from_slice(&self.dst.0);
        out[ALEN..2 * ALEN].copy_from_slice(&self.src.0);
        out[12..14].copy_from_slice(&self.ethertype.to_be_bytes());
        Ok(())
    }
}
