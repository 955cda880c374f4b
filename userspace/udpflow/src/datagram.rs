//! The datagram format of a numbered flow.
//!
//! Every datagram starts with a 16-byte header (all fields big-endian):
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 4 | magic `0x70_6e_66_31` ("pnf1") |
//! | 4 | 4 | flow id (chosen by the sender, so a sink can refuse strays) |
//! | 8 | 8 | sequence number, from 0, one per datagram |
//!
//! The rest is a pattern computed from the sequence number, so a sink can
//! tell a datagram that arrived changed from one that arrived whole without
//! keeping a copy of what was sent.

use thiserror::Error;

/// The first four bytes of every datagram.
pub const MAGIC: u32 = 0x706e_6631;
/// Bytes before the pattern.
pub const HEADER_LEN: usize = 16;

/// Why a received datagram is not one of the flow's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Malformed {
    /// Shorter than the header.
    #[error("shorter than the {HEADER_LEN}-byte header")]
    Short,
    /// The magic is wrong: not a datagram of this format.
    #[error("wrong magic")]
    Magic,
    /// The payload after the header differs from the pattern.
    #[error("payload differs from the pattern of its sequence number")]
    Payload,
}

/// A 64-bit value in which every bit depends on every bit of `seq`
/// (splitmix64's finaliser), so no two sequence numbers share a pattern.
fn mix(seq: u64) -> u64 {
    let mut z = seq.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The byte at `offset` (counted from the datagram's start) of a datagram
/// whose sequence number mixes to `z`: it changes with the position too, so
/// a payload shifted by any amount does not match.
fn pattern_byte(z: u64, offset: usize) -> u8 {
    (z >> (8 * (offset % 8))) as u8 ^ (offset >> 3) as u8
}

/// Fills `buf` (the whole datagram) as datagram `seq` of flow `flow`. A
/// buffer shorter than the header gets what fits of it.
pub fn fill(buf: &mut [u8], flow: u32, seq: u64) {
    let mut header = [0u8; HEADER_LEN];
    header[0..4].copy_from_slice(&MAGIC.to_be_bytes());
    header[4..8].copy_from_slice(&flow.to_be_bytes());
    header[8..16].copy_from_slice(&seq.to_be_bytes());
    let n = buf.len().min(HEADER_LEN);
    buf[..n].copy_from_slice(&header[..n]);
    let z = mix(seq);
    for (i, b) in buf.iter_mut().enumerate().skip(HEADER_LEN) {
        *b = pattern_byte(z, i);
    }
}

/// Checks a received datagram; gives its flow and sequence number.
pub fn check(buf: &[u8]) -> Result<(u32, u64), Malformed> {
    if buf.len() < HEADER_LEN {
        return Err(Malformed::Short);
    }
    let word = |r: std::ops::Range<usize>| buf[r].iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b));
    if word(0..4) != u64::from(MAGIC) {
        return Err(Malformed::Magic);
    }
    let flow = word(4..8) as u32;
    let seq = word(8..16);
    let z = mix(seq);
    if buf.iter().enumerate().skip(HEADER_LEN).any(|(i, b)| *b != pattern_byte(z, i)) {
        return Err(Malformed::Payload);
    }
    Ok((flow, seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filled_datagram_checks_with_its_numbers() {
        for len in [HEADER_LEN, 100, 8164] {
            let mut buf = vec![0u8; len];
            fill(&mut buf, 7, 123_456_789_012);
            assert_eq!(check(&buf), Ok((7, 123_456_789_012)));
        }
    }

    #[test]
    fn every_changed_byte_is_caught() {
        let mut buf = vec![0u8; 200];
        fill(&mut buf, 1, 42);
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x10;
            let r = check(&bad);
            if i < 4 {
                assert_eq!(r, Err(Malformed::Magic), "byte {i}");
            } else if i >= 8 {
                // A changed sequence number no longer matches its pattern.
                assert_eq!(r, Err(Malformed::Payload), "byte {i}");
            } else {
                // The flow id is not covered by the pattern: a changed one
                // is a stray datagram, which the tally counts.
                assert_eq!(r, Ok((1 ^ (0x10 << (8 * (7 - i))), 42)), "byte {i}");
            }
        }
    }

    #[test]
    fn short_and_foreign_datagrams_are_refused() {
        assert_eq!(check(&[0u8; 15]), Err(Malformed::Short));
        assert_eq!(check(&[0u8; 64]), Err(Malformed::Magic));
    }

    #[test]
    fn payloads_of_neighbouring_datagrams_differ() {
        let (mut a, mut b) = (vec![0u8; 64], vec![0u8; 64]);
        fill(&mut a, 0, 1);
        fill(&mut b, 0, 2);
        assert_ne!(a[HEADER_LEN..], b[HEADER_LEN..]);
        // A payload moved to another sequence number's header is caught.
        a[8..16].copy_from_slice(&2u64.to_be_bytes());
        assert_eq!(check(&a), Err(Malformed::Payload));
    }
}
