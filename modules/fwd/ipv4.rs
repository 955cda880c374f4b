// SPDX-License-Identifier: GPL-2.0

//! The IPv4 header as a router sees it: validated field by field before any
//! of it is trusted, and the one rewrite forwarding makes (the TTL, with the
//! header checksum updated incrementally, RFC 1624).
//!
//! Everything here works on byte slices, so the same code serves a header in
//! an skb, a header copied out of a NIC's memory, and the KUnit cases.

use kernel::prelude::*;

/// The shortest header (no options).
pub(crate) const MIN_HEADER: usize = 20;
/// The longest header (IHL 15).
pub(crate) const MAX_HEADER: usize = 60;
/// Offset of the TTL byte; the protocol byte follows it in the same word.
pub(crate) const TTL_OFFSET: usize = 8;
/// Offset of the header checksum.
pub(crate) const CHECKSUM_OFFSET: usize = 10;

/// Why a frame that says it is IPv4 is not a valid IPv4 packet. Such frames
/// are never forwarded; they are counted by reason and dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Malformed {
    /// Shorter than the minimum header, or than the header it announces.
    Truncated,
    /// The version field is not 4.
    Version,
    /// IHL below 5 (20 bytes).
    HeaderLength,
    /// Total length shorter than the header, or longer than the frame.
    TotalLength,
    /// The header checksum does not verify.
    Checksum,
}

impl Malformed {
    /// Every reason, in the order counters list them.
    pub(crate) const ALL: [Malformed; 5] =
        [Self::Truncated, Self::Version, Self::HeaderLength, Self::TotalLength, Self::Checksum];

    /// The counter's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Truncated => "truncated",
            Self::Version => "version",
            Self::HeaderLength => "header_length",
            Self::TotalLength => "total_length",
            Self::Checksum => "checksum",
        }
    }
}

/// The fields of a validated header that forwarding decisions use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// Header length in bytes (20 to 60).
    pub(crate) header_len: usize,
    /// The total length field: header and payload, without link padding.
    pub(crate) total_len: usize,
    /// DSCP and ECN.
    pub(crate) tos: u8,
    /// Flags (reserved, DF, MF) and fragment offset, as on the wire.
    pub(crate) frag: u16,
    pub(crate) ttl: u8,
    pub(crate) protocol: u8,
    pub(crate) saddr: [u8; 4],
    pub(crate) daddr: [u8; 4],
}

impl Header {
    /// Validates the header at the start of `bytes`, of which `packet_len`
    /// bytes are present in the frame (`bytes` may hold fewer: only the
    /// header is needed, and a caller reads at most [`MAX_HEADER`]).
    pub(crate) fn parse(bytes: &[u8], packet_len: usize) -> Result<Self, Malformed> {
        let present = bytes.len().min(packet_len);
        if present < MIN_HEADER {
            return Err(Malformed::Truncated);
        }
        if bytes[0] >> 4 != 4 {
            return Err(Malformed::Version);
        }
        let header_len = usize::from(bytes[0] & 0x0f) * 4;
        if header_len < MIN_HEADER {
            return Err(Malformed::HeaderLength);
        }
        if present < header_len {
            return Err(Malformed::Truncated);
        }
        let total_len = usize::from(be16(bytes, 2));
        if total_len < header_len || total_len > packet_len {
            return Err(Malformed::TotalLength);
        }
        if checksum(&bytes[..header_len]) != 0 {
            return Err(Malformed::Checksum);
        }
        Ok(Header {
            header_len,
            total_len,
            tos: bytes[1],
            frag: be16(bytes, 6),
            ttl: bytes[TTL_OFFSET],
            protocol: bytes[9],
            saddr: [bytes[12], bytes[13], bytes[14], bytes[15]],
            daddr: [bytes[16], bytes[17], bytes[18], bytes[19]],
        })
    }

    /// Carries options (the slow path handles them, as Linux does).
    pub(crate) fn has_options(&self) -> bool {
        self.header_len > MIN_HEADER
    }

    /// A fragment: more fragments follow, or it does not start at offset 0.
    pub(crate) fn is_fragment(&self) -> bool {
        self.frag & 0x3fff != 0
    }

    /// Addressed to a group, to everyone, or to nowhere a router sends.
    pub(crate) fn daddr_is_special(&self) -> bool {
        let d = self.daddr;
        d[0] >= 224 || d[0] == 0 || d[0] == 127
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// The Internet checksum of `bytes` (RFC 1071), folded and complemented:
/// 0 over a header whose checksum field is right.
pub(crate) fn checksum(bytes: &[u8]) -> u16 {
    let mut sum = 0u32;
    let mut words = bytes.chunks_exact(2);
    for w in &mut words {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u32::from(*last) << 8;
    }
    !fold(sum)
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The TTL/protocol word and checksum after decrementing the TTL of a
/// header whose TTL/protocol word is `word` and checksum `check`: RFC 1624,
/// equation 3, `HC' = ~(~HC + ~m + m')`, which never yields the 0xffff a
/// one's-complement update by addition could.
pub(crate) fn decrement_ttl_word(word: u16, check: u16) -> Result<(u16, u16), ()> {
    if word >> 8 == 0 {
        return Err(());
    }
    let new = word - 0x0100;
    let sum = u32::from(!check) + u32::from(!word) + u32::from(new);
    Ok((new, !fold(sum)))
}

/// Decrements the TTL of the valid header at the start of `header` in
/// place and updates its checksum. `Err` if the TTL is already 0 or the
/// slice is too short (callers check both first).
pub(crate) fn decrement_ttl(header: &mut [u8]) -> Result<(), ()> {
    if header.len() < MIN_HEADER {
        return Err(());
    }
    let (word, check) = decrement_ttl_word(be16(header, TTL_OFFSET), be16(header, CHECKSUM_OFFSET))?;
    header[TTL_OFFSET..TTL_OFFSET + 2].copy_from_slice(&word.to_be_bytes());
    header[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 2].copy_from_slice(&check.to_be_bytes());
    Ok(())
}

#[kunit_tests(fwd_ipv4)]
mod tests {
    use super::*;

    /// A valid 20-byte header: TCP from 10.0.1.2 to 10.0.2.2, TTL 64,
    /// total length `len`, checksum filled in.
    fn header(len: u16) -> [u8; 20] {
        let mut h = [0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 0, 1, 2, 10, 0, 2, 2];
        h[2..4].copy_from_slice(&len.to_be_bytes());
        let c = checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }

    #[test]
    fn a_valid_header_parses_into_its_fields() -> Result {
        let h = Header::parse(&header(100), 100).map_err(|_| EINVAL)?;
        assert_eq!(h.header_len, 20);
        assert_eq!(h.total_len, 100);
        assert_eq!(h.ttl, 64);
        assert_eq!(h.protocol, 6);
        assert_eq!(h.saddr, [10, 0, 1, 2]);
        assert_eq!(h.daddr, [10, 0, 2, 2]);
        assert!(!h.has_options());
        // DF alone is not a fragment.
        assert!(!h.is_fragment());
        // Link padding after the packet is allowed.
        assert!(Header::parse(&header(100), 160).is_ok());
        Ok(())
    }

    #[test]
    fn each_malformation_is_named() {
        let good = header(100);
        assert_eq!(Header::parse(&good[..19], 100), Err(Malformed::Truncated));
        assert_eq!(Header::parse(&good, 19), Err(Malformed::Truncated));
        let mut v6 = good;
        v6[0] = 0x65;
        assert_eq!(Header::parse(&v6, 100), Err(Malformed::Version));
        let mut short = good;
        short[0] = 0x44;
        assert_eq!(Header::parse(&short, 100), Err(Malformed::HeaderLength));
        // IHL 6 announces 24 bytes; 20 are there.
        let mut long = good;
        long[0] = 0x46;
        assert_eq!(Header::parse(&long, 20), Err(Malformed::Truncated));
        assert_eq!(Header::parse(&header(101), 100), Err(Malformed::TotalLength));
        assert_eq!(Header::parse(&header(19), 100), Err(Malformed::TotalLength));
        let mut bad_sum = good;
        bad_sum[11] ^= 1;
        assert_eq!(Header::parse(&bad_sum, 100), Err(Malformed::Checksum));
    }

    /// xorshift64: deterministic, so a failure can be replayed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn the_incremental_checksum_matches_a_full_recomputation() -> Result {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let mut h = [0u8; 20];
            for chunk in h.chunks_mut(8) {
                let r = rng.next().to_ne_bytes();
                chunk.copy_from_slice(&r[..chunk.len()]);
            }
            h[0] = 0x45;
            // Any total length from the bare header up: the frame is taken
            // to be as long as the largest.
            let total = 20 + (rng.next() % (65536 - 20)) as u16;
            h[2..4].copy_from_slice(&total.to_be_bytes());
            h[TTL_OFFSET] = h[TTL_OFFSET].max(1);
            h[10] = 0;
            h[11] = 0;
            let c = checksum(&h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            let ttl = h[TTL_OFFSET];
            assert!(Header::parse(&h, 65535).is_ok());

            assert_eq!(decrement_ttl(&mut h), Ok(()));
            assert_eq!(h[TTL_OFFSET], ttl - 1);
            let incremental = u16::from_be_bytes([h[10], h[11]]);
            h[10] = 0;
            h[11] = 0;
            let full = checksum(&h);
            if incremental != full {
                pr_err!("incremental {:#06x}, full {:#06x} for header {:02x?}\n", incremental, full, h);
            }
            assert_eq!(incremental, full);
        }
        Ok(())
    }

    #[test]
    fn a_ttl_of_zero_is_not_decremented() {
        let mut h = header(40);
        h[TTL_OFFSET] = 0;
        let before = h;
        assert_eq!(decrement_ttl(&mut h), Err(()));
        assert_eq!(h, before);
        assert_eq!(decrement_ttl(&mut h[..19]), Err(()));
    }

    #[test]
    fn special_destinations_are_recognised() -> Result {
        let mut h = Header::parse(&header(40), 40).map_err(|_| EINVAL)?;
        for (d, special) in [([224, 0, 0, 1], true), ([255, 255, 255, 255], true), ([0, 1, 2, 3], true),
                             ([127, 0, 0, 1], true), ([10, 0, 2, 2], false), ([223, 255, 255, 254], false)] {
            h.daddr = d;
            if h.daddr_is_special() != special {
                pr_err!("{:?}: special is {}\n", d, h.daddr_is_special());
            }
            assert_eq!(h.daddr_is_special(), special);
        }
        Ok(())
    }
}
