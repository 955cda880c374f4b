//! AF_PACKET with a TPACKET_V3 receive ring: the kernel fills blocks of a
//! ring mapped into the process and hands a block over when it is full or
//! its retire timer fires; frames are sent with `sendmmsg` batches.

use crate::link::Link;
use anyhow::{bail, Context, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const PACKET_VERSION: libc::c_int = 10;
const PACKET_RX_RING: libc::c_int = 5;
const TPACKET_V3: libc::c_int = 2;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
/// Block header (`tpacket_hdr_v1` inside `tpacket_block_desc`) offsets.
const BLOCK_STATUS: usize = 8;
const BLOCK_NUM_PKTS: usize = 12;
const BLOCK_FIRST_PKT: usize = 16;
/// Packet header (`tpacket3_hdr`) offsets.
const PKT_NEXT: usize = 0;
const PKT_SNAPLEN: usize = 12;
const PKT_MAC: usize = 24;

/// Frames queued before they go out in one `sendmmsg`.
const BATCH: usize = 32;

/// An AF_PACKET socket bound to one interface and ethertype.
pub struct PacketLink {
    fd: OwnedFd,
    ring: *mut u8,
    block_size: usize,
    blocks: usize,
    next_block: usize,
    queued: Vec<Vec<u8>>,
    max_frame: usize,
}

#[repr(C)]
struct TpacketReq3 {
    tp_block_size: u32,
    tp_block_nr: u32,
    tp_frame_size: u32,
    tp_frame_nr: u32,
    tp_retire_blk_tov: u32,
    tp_sizeof_priv: u32,
    tp_feature_req_word: u32,
}

impl PacketLink {
    /// Opens a raw packet socket on `ifname` for `ethertype` (host order),
    /// with a receive ring of `blocks` blocks of 64 KiB whose blocks are
    /// retired after at most `retire_ms` milliseconds.
    pub fn open(ifname: &str, ethertype: u16, blocks: u32, retire_ms: u32, max_frame: usize) -> Result<Self> {
        // SAFETY: Plain socket creation; the descriptor is owned below.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, i32::from(ethertype.to_be())) };
        if raw < 0 {
            bail!("AF_PACKET socket: {}", std::io::Error::last_os_error());
        }
        // SAFETY: A new descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let version = TPACKET_V3;
        setsockopt(&fd, PACKET_VERSION, &version).context("PACKET_VERSION TPACKET_V3")?;
        let block_size = 1usize << 16;
        let req = TpacketReq3 {
            tp_block_size: block_size as u32,
            tp_block_nr: blocks,
            tp_frame_size: 1 << 14,
            tp_frame_nr: blocks * (block_size as u32 >> 14),
            tp_retire_blk_tov: retire_ms,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setsockopt(&fd, PACKET_RX_RING, &req).context("PACKET_RX_RING")?;
        let len = block_size * blocks as usize;
        // SAFETY: Maps the ring the kernel just allocated for this socket.
        let ring = unsafe {
            libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd.as_raw_fd(), 0)
        };
        if ring == libc::MAP_FAILED {
            bail!("mapping the TPACKET_V3 ring: {}", std::io::Error::last_os_error());
        }
        let name = std::ffi::CString::new(ifname)?;
        // SAFETY: `name` is a valid C string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            bail!("no interface {ifname}");
        }
        // SAFETY: All-zero bytes are a valid sockaddr_ll.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ethertype.to_be();
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is a valid sockaddr_ll of the size passed.
        let rc = unsafe {
            libc::bind(fd.as_raw_fd(), (&raw const sll).cast(), std::mem::size_of::<libc::sockaddr_ll>() as u32)
        };
        if rc != 0 {
            bail!("binding to {ifname}: {}", std::io::Error::last_os_error());
        }
        Ok(PacketLink { fd, ring: ring.cast(), block_size, blocks: blocks as usize, next_block: 0, queued: Vec::new(), max_frame })
    }

    fn word(&self, block: usize, offset: usize) -> &AtomicU32 {
        // SAFETY: `block < blocks` and `offset + 4 <= block_size` at every
        // caller; the word is aligned and shared with the kernel, so it is
        // accessed atomically.
        unsafe { AtomicU32::from_ptr(self.ring.add(block * self.block_size + offset).cast()) }
    }

    fn read_u32(&self, block: usize, offset: usize) -> u32 {
        // SAFETY: As in `word`; plain fields the kernel wrote before
        // publishing the block's status, read after it.
        unsafe { std::ptr::read_unaligned(self.ring.add(block * self.block_size + offset).cast::<u32>()) }
    }

    fn read_u16(&self, block: usize, offset: usize) -> u16 {
        // SAFETY: As in `read_u32`.
        unsafe { std::ptr::read_unaligned(self.ring.add(block * self.block_size + offset).cast::<u16>()) }
    }
}

fn setsockopt<T>(fd: &OwnedFd, name: libc::c_int, value: &T) -> Result<()> {
    // SAFETY: `value` is readable for its size.
    let rc = unsafe {
        libc::setsockopt(fd.as_raw_fd(), libc::SOL_PACKET, name, (value as *const T).cast(), std::mem::size_of::<T>() as u32)
    };
    if rc != 0 {
        bail!("{}", std::io::Error::last_os_error());
    }
    Ok(())
}

impl Link for PacketLink {
    fn send(&mut self, frame: &[u8]) -> Result<()> {
        self.queued.push(frame.to_vec());
        if self.queued.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let mut done = 0;
        while done < self.queued.len() {
            let mut iovs: Vec<libc::iovec> = self.queued[done..]
                .iter()
                .map(|f| libc::iovec { iov_base: f.as_ptr() as *mut _, iov_len: f.len() })
                .collect();
            let mut msgs: Vec<libc::mmsghdr> = iovs
                .iter_mut()
                .map(|iov| {
                    // SAFETY: All-zero bytes are a valid mmsghdr.
                    let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                    m.msg_hdr.msg_iov = iov;
                    m.msg_hdr.msg_iovlen = 1;
                    m
                })
                .collect();
            // SAFETY: Every message points at a live frame; the socket is bound.
            let n = unsafe { libc::sendmmsg(self.fd.as_raw_fd(), msgs.as_mut_ptr(), msgs.len() as u32, 0) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::ENOBUFS) || e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                self.queued.clear();
                bail!("sendmmsg: {e}");
            }
            done += n as usize;
        }
        self.queued.clear();
        Ok(())
    }

    fn recv(&mut self, timeout: Duration, f: &mut dyn FnMut(&[u8])) -> Result<usize> {
        let mut handed = 0;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let b = self.next_block;
            if self.word(b, BLOCK_STATUS).load(Ordering::Acquire) & TP_STATUS_USER != 0 {
                let n = self.read_u32(b, BLOCK_NUM_PKTS) as usize;
                let mut off = self.read_u32(b, BLOCK_FIRST_PKT) as usize;
                for _ in 0..n {
                    let snap = self.read_u32(b, off + PKT_SNAPLEN) as usize;
                    let mac = usize::from(self.read_u16(b, off + PKT_MAC));
                    if off + mac + snap <= self.block_size {
                        // SAFETY: Within the block (checked), which is ours
                        // until its status goes back to the kernel.
                        let frame = unsafe { std::slice::from_raw_parts(self.ring.add(b * self.block_size + off + mac), snap) };
                        f(frame);
                        handed += 1;
                    }
                    let next = self.read_u32(b, off + PKT_NEXT) as usize;
                    if next == 0 {
                        break;
                    }
                    off += next;
                }
                self.word(b, BLOCK_STATUS).store(TP_STATUS_KERNEL, Ordering::Release);
                self.next_block = (b + 1) % self.blocks;
                continue;
            }
            if handed > 0 {
                return Ok(handed);
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Ok(0);
            }
            let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN | libc::POLLERR, revents: 0 };
            // SAFETY: One valid pollfd.
            unsafe { libc::poll(&mut pfd, 1, left.as_millis().clamp(1, i32::MAX as u128) as i32) };
        }
    }

    fn max_frame(&self) -> usize {
        self.max_frame
    }
}

impl Drop for PacketLink {
    fn drop(&mut self) {
        // SAFETY: The mapping made in `open`, unmapped once.
        unsafe { libc::munmap(self.ring.cast(), self.block_size * self.blocks) };
    }
}
