//! Resetting the TCP connections of an application that died.
//!
//! The registry does not know the connections' sequence numbers (they live
//! in the dead application's library). It does not need to: once the
//! endpoint is gone, the flow's frames reach the kernel's stack, which has
//! no socket for them (the registry's reservation is bound, not listening)
//! and answers each with a reset whose sequence number is the
//! acknowledgement it answers, exactly what the peer expects. So the
//! registry only makes the peer speak: it sends it an acknowledgement with
//! a sequence number outside its window, which the peer answers with a
//! duplicate acknowledgement (RFC 793 §3.9, RFC 5961 §4), and the kernel
//! resets that. A peer that was only receiving learns at once, not at its
//! next time-out.
//!
//! Stacks differ in which check comes first. Linux checks the sequence
//! number first, whatever the acknowledgement number. smoltcp checks the
//! acknowledgement number first: one behind what it has sent is dropped
//! without a word, one ahead of it earns a challenge acknowledgement. The
//! registry does not know where the peer's sequence space is either, so it
//! sends each probe twice, with acknowledgement numbers half the sequence
//! space apart: one of the two is ahead, whatever the peer has sent.

use std::net::SocketAddrV4;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// Probes per connection, and the pause between them (Linux rate-limits
/// its answers to out-of-window segments to one per 500 ms by default).
const PROBES: usize = 2;
const PROBE_GAP: Duration = Duration::from_millis(600);

/// The ones'-complement sum of `data` folded into 16 bits, added to `sum`.
fn sum16(mut sum: u32, data: &[u8]) -> u32 {
    for pair in data.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum
}

/// A bare TCP acknowledgement from `local` to `remote` with sequence
/// number `seq` and acknowledgement number `ack`, checksummed (a raw
/// socket adds only the IP header).
pub fn probe_segment(local: SocketAddrV4, remote: SocketAddrV4, seq: u32, ack: u32) -> [u8; 20] {
    let mut t = [0u8; 20];
    t[0..2].copy_from_slice(&local.port().to_be_bytes());
    t[2..4].copy_from_slice(&remote.port().to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    // Header length 5 words; ACK; a window of 1024.
    t[12] = 5 << 4;
    t[13] = 0x10;
    t[14..16].copy_from_slice(&1024u16.to_be_bytes());
    let mut pseudo = [0u8; 12];
    pseudo[0..4].copy_from_slice(&local.ip().octets());
    pseudo[4..8].copy_from_slice(&remote.ip().octets());
    pseudo[9] = 6;
    pseudo[10..12].copy_from_slice(&20u16.to_be_bytes());
    let sum = !(sum16(sum16(0, &pseudo), &t) as u16);
    t[16..18].copy_from_slice(&sum.to_be_bytes());
    t
}

/// Makes each peer of `local` answer, so that the kernel resets its
/// connection; returns how many probes went out. Blocks for the probes'
/// pauses.
pub fn reset_peers(local: SocketAddrV4, peers: &[SocketAddrV4]) -> usize {
    let Ok(sock) = raw_socket(local) else { return 0 };
    let mut sent = 0;
    for round in 0..PROBES {
        if round > 0 {
            std::thread::sleep(PROBE_GAP);
        }
        for peer in peers {
            let (seq, ack) = (random_u32(), random_u32());
            for ack in [ack, ack.wrapping_add(1 << 31)] {
                if send(&sock, *peer, &probe_segment(local, *peer, seq, ack)).is_ok() {
                    sent += 1;
                }
            }
        }
    }
    sent
}

fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: All-zero bytes are a valid sockaddr_in.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_addr = libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) };
    sa
}

fn raw_socket(local: SocketAddrV4) -> std::io::Result<OwnedFd> {
    // SAFETY: Plain socket creation; the result is checked.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::IPPROTO_TCP) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: A new descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let sa = sockaddr(local);
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `sa` is a valid sockaddr_in of `len` bytes. Bound to the
    // endpoint's address, so the kernel sends from it.
    if unsafe { libc::bind(fd.as_raw_fd(), (&raw const sa).cast(), len) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

fn send(sock: &OwnedFd, to: SocketAddrV4, seg: &[u8]) -> std::io::Result<()> {
    let sa = sockaddr(to);
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `seg` and `sa` are valid for the lengths given.
    let n = unsafe { libc::sendto(sock.as_raw_fd(), seg.as_ptr().cast(), seg.len(), 0, (&raw const sa).cast(), len) };
    if n < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // SAFETY: `b` is writable for its length.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n == 4 { u32::from_ne_bytes(b) } else { std::process::id().wrapping_mul(2_654_435_761) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_is_a_checksummed_bare_ack() {
        let local: SocketAddrV4 = "10.0.0.1:4000".parse().unwrap();
        let remote: SocketAddrV4 = "10.0.0.2:5001".parse().unwrap();
        let t = probe_segment(local, remote, 0x0102_0304, 0x0a0b_0c0d);
        assert_eq!(&t[0..2], &4000u16.to_be_bytes());
        assert_eq!(&t[2..4], &5001u16.to_be_bytes());
        assert_eq!(&t[4..8], &[1, 2, 3, 4]);
        assert_eq!(&t[8..12], &[10, 11, 12, 13]);
        assert_eq!(t[13], 0x10, "ACK only");
        // Summing the pseudo-header and the segment, checksum included,
        // gives all ones.
        let mut pseudo = [0u8; 12];
        pseudo[0..4].copy_from_slice(&[10, 0, 0, 1]);
        pseudo[4..8].copy_from_slice(&[10, 0, 0, 2]);
        pseudo[9] = 6;
        pseudo[11] = 20;
        assert_eq!(sum16(sum16(0, &pseudo), &t), 0xffff);
        // Any change breaks it.
        let mut bad = t;
        bad[5] ^= 1;
        assert_ne!(sum16(sum16(0, &pseudo), &bad), 0xffff);
    }
}
