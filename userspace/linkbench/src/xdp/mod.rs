//! AF_XDP transport in copy mode (`XDP_COPY`).
//!
//! One AF_XDP socket is bound to queue 0 of an interface. A tiny
//! hand-assembled XDP program redirects the frames of one ethertype into it
//! through a one-entry XSKMAP and passes every other frame to the stack.
//! Frames travel through a UMEM of page-sized chunks: the first half is lent
//! to the kernel for receiving (fill and RX rings), the second half carries
//! outgoing frames (TX and completion rings).
//!
//! # Frames larger than a chunk
//!
//! A UMEM chunk can be at most one page (`xdp_umem_reg()` in
//! net/xdp/xdp_umem.c rejects a larger `chunk_size`), and on receive the
//! kernel keeps `XDP_PACKET_HEADROOM` (256) bytes free in front of the data
//! in each chunk, so one chunk holds 4096 - 256 = 3840 bytes with 4 KiB
//! pages. A 9000-byte jumbo frame therefore travels as multi-buffer AF_XDP:
//! the socket is bound with `XDP_USE_SG` and the program loaded with
//! `BPF_F_XDP_HAS_FRAGS`; a frame spans several descriptors, each but the
//! last marked `XDP_PKT_CONTD`, on the RX ring (reassembled here into one
//! buffer, a copy an application taking jumbo frames would make too) and
//! on the TX ring (a frame is split over as many TX chunks as it needs).
//! Frames that fit one chunk take one descriptor and no copy on receive.
//! The interface may impose a lower limit still through its MTU.

mod bpf;
mod ring;

use crate::link::Link;
use anyhow::{anyhow, bail, ensure, Context, Result};
use std::ffi::{c_int, c_long, c_uint, c_void, CString};
use std::io;
use std::marker::PhantomData;
use std::mem::offset_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use bpf::{attach, create_xskmap, load_program, register_socket};
use ring::*;

/// Bytes the kernel keeps free in front of every received frame in its
/// chunk (`XDP_PACKET_HEADROOM` in include/uapi/linux/bpf.h).
const XDP_PACKET_HEADROOM: usize = 256;

/// Most descriptors one frame may span (multi-buffer), enough for a
/// 9000-byte MTU frame with room to spare.
const MAX_FRAGS: usize = 4;

/// Queue of the interface the socket is bound to.
const QUEUE_ID: u32 = 0;

/// How long sending waits for the kernel to take queued frames or to hand
/// back transmitted chunks before reporting a stalled link.
const TX_STALL: Duration = Duration::from_secs(1);

/// How long [`bind`] retries while the queue is still held by a socket
/// the kernel is releasing.
const BIND_RETRY: Duration = Duration::from_secs(2);


/// Sets the `SOL_XDP` option `name` of `sock` to `value`.
///
/// # Safety
///
/// `T` must be the option's type without implicit padding, and what the
/// option does must be sound: addresses in `value` (`XDP_UMEM_REG`) must
/// point to memory that stays mapped while the kernel may use it and that
/// Rust code accesses only through raw pointers while the kernel may write
/// it.
unsafe fn set_xdp_opt<T>(sock: &OwnedFd, name: c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is readable for `size_of::<T>()` bytes; the caller
    // vouches for the option's effects.
    let ret = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_XDP,
            name,
            ptr::from_ref(value).cast::<c_void>(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Reads where the four rings sit in their mappings.
fn mmap_offsets(sock: &OwnedFd) -> Result<libc::xdp_mmap_offsets> {
    let zero = libc::xdp_ring_offset {
        producer: 0,
        consumer: 0,
        desc: 0,
        flags: 0,
    };
    let mut offsets = libc::xdp_mmap_offsets {
        rx: zero,
        tx: zero,
        fr: zero,
        cr: zero,
    };
    let mut len = size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
    // SAFETY: `offsets` is writable for `len` bytes and `len` is a valid
    // `socklen_t` the kernel updates.
    let ret = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_XDP,
            libc::XDP_MMAP_OFFSETS,
            ptr::from_mut(&mut offsets).cast::<c_void>(),
            &mut len,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error()).context("getsockopt XDP_MMAP_OFFSETS");
    }
    ensure!(
        len as usize == size_of::<libc::xdp_mmap_offsets>(),
        "kernel reports AF_XDP ring offsets without ring flags (needs Linux 5.4 or later)"
    );
    Ok(offsets)
}

/// Binds `sock` to queue [`QUEUE_ID`] of interface `ifindex` in copy mode.
///
/// The queue of a socket closed just before (say, by the previous run)
/// stays taken until the kernel has finished releasing that socket, which
/// it defers past an RCU grace period and a work item; meanwhile `bind()`
/// fails with `EBUSY`, so that error is retried for up to [`BIND_RETRY`].
fn bind(sock: &OwnedFd, ifindex: u32) -> io::Result<()> {
    let addr = libc::sockaddr_xdp {
        sxdp_family: libc::AF_XDP as u16,
        sxdp_flags: libc::XDP_COPY | libc::XDP_USE_NEED_WAKEUP | libc::XDP_USE_SG,
        sxdp_ifindex: ifindex,
        sxdp_queue_id: QUEUE_ID,
        sxdp_shared_umem_fd: 0,
    };
    let start = Instant::now();
    loop {
        // SAFETY: `addr` is a valid `sockaddr_xdp` and we pass its size.
        let ret = unsafe {
            libc::bind(
                sock.as_raw_fd(),
                ptr::from_ref(&addr).cast::<libc::sockaddr>(),
                size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        };
        if ret == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EBUSY) || start.elapsed() >= BIND_RETRY {
            return Err(err);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// UMEM chunk size: one page, the largest the kernel accepts
/// (`xdp_umem_reg()` rejects chunks above `PAGE_SIZE`); 4096 on x86-64.
fn chunk_size() -> Result<usize> {
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(page)
        .ok()
        .filter(|&page| page.is_power_of_two() && page > XDP_PACKET_HEADROOM)
        .with_context(|| format!("unusable page size {page}"))
}

/// One end of a link over an AF_XDP socket in copy mode.
///
/// Dropping it first closes the BPF link, which detaches the XDP program,
/// then unmaps the rings and closes the socket (the kernel releases the
/// socket once both are gone), and last unmaps the UMEM, whose pages the
/// kernel keeps pinned until it has released the socket. The fields are
/// declared in that order and each releases its resource when dropped, so
/// an `open` failing halfway cleans up the same way.
pub struct XdpLink {
    /// BPF link holding the XDP program on the interface.
    _attachment: OwnedFd,
    /// RX ring: frames received into fill chunks.
    rx: ConsRing<libc::xdp_desc>,
    /// Fill ring: chunks lent to the kernel for receiving.
    fill: ProdRing<u64>,
    /// TX ring: frames to send.
    tx: ProdRing<libc::xdp_desc>,
    /// Completion ring: TX chunks the kernel is done with.
    completion: ConsRing<u64>,
    /// The AF_XDP socket.
    sock: OwnedFd,
    /// The UMEM all frames live in; dropped after the socket.
    umem: Mmap,
    /// Bytes per UMEM chunk.
    chunk_size: usize,
    /// Addresses of TX chunks neither queued nor in the kernel's hands.
    free_tx: Vec<u64>,
    /// Receive chunks done with that found the fill ring full.
    unfilled: Vec<u64>,
    /// The fragments so far of a received frame that spans several
    /// descriptors.
    partial: Vec<u8>,
}

impl XdpLink {
    /// Opens an AF_XDP socket on `ifname` queue 0 in copy mode, with a UMEM
    /// of `frames` page-sized chunks (4096 bytes on x86-64; half for
    /// receive/fill, half for transmit), loads a tiny XDP program that
    /// redirects frames whose ethertype is `ethertype` (host order, e.g.
    /// 0x88b7) into the socket and passes all other frames to the stack, and
    /// attaches it to the interface (native XDP if the driver offers it,
    /// generic XDP otherwise).
    ///
    /// Only frames arriving on RX queue 0 reach the socket; on interfaces
    /// with several queues, steer the traffic there (or use one queue).
    /// Needs `CAP_NET_ADMIN` and `CAP_BPF` (or root), and no other XDP
    /// program attached to the interface.
    pub fn open(ifname: &str, ethertype: u16, frames: u32) -> Result<Self> {
        ensure!(
            frames >= 2,
            "AF_XDP needs at least 2 UMEM frames, got {frames}"
        );
        let chunk_size = chunk_size()?;
        let name =
            CString::new(ifname).with_context(|| format!("bad interface name {ifname:?}"))?;
        // SAFETY: `name` is a NUL-terminated string alive during the call.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::last_os_error()).with_context(|| format!("interface {ifname}"));
        }

        let rx_chunks = frames / 2;
        let tx_chunks = frames - rx_chunks;
        let ring_size = |chunks: u32| {
            chunks
                .checked_next_power_of_two()
                .context("AF_XDP ring too large")
        };
        let (rx_size, tx_size) = (ring_size(rx_chunks)?, ring_size(tx_chunks)?);
        // The kernel publishes a batch of received frames on the RX ring a
        // moment before it publishes having consumed their fill entries, so
        // for a moment the fill ring can look occupied by up to twice the
        // receive chunks; twice the room keeps recycling from failing.
        let fill_size = ring_size(rx_chunks.saturating_mul(2))?;
        let umem_len = (frames as usize)
            .checked_mul(chunk_size)
            .context("UMEM size overflows")?;
        let umem = Mmap::anonymous(umem_len).context("mmap UMEM")?;

        // SAFETY: plain socket(2) call.
        let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error()).context("socket(AF_XDP)");
        }
        // SAFETY: `fd` was just opened and nothing else owns it.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };

        let reg = libc::xdp_umem_reg {
            addr: umem.as_ptr() as u64,
            len: umem_len as u64,
            chunk_size: chunk_size as u32,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        // SAFETY: `xdp_umem_reg` has no padding. The UMEM stays mapped while
        // the socket lives (`XdpLink` drops it after the socket and rings,
        // and the kernel pins its pages until it lets go of them, so they
        // are never reused under it), and we touch it only through raw
        // pointers, each time in a chunk the kernel has handed to us.
        unsafe { set_xdp_opt(&sock, libc::XDP_UMEM_REG, &reg) }
            .context("XDP_UMEM_REG (is RLIMIT_MEMLOCK too low?)")?;
        for (opt, what, size) in [
            (libc::XDP_UMEM_FILL_RING, "XDP_UMEM_FILL_RING", fill_size),
            (
                libc::XDP_UMEM_COMPLETION_RING,
                "XDP_UMEM_COMPLETION_RING",
                tx_size,
            ),
            (libc::XDP_RX_RING, "XDP_RX_RING", rx_size),
            (libc::XDP_TX_RING, "XDP_TX_RING", tx_size),
        ] {
            let size = size as c_int;
            // SAFETY: ring sizes are plain `int`s.
            unsafe { set_xdp_opt(&sock, opt, &size) }
                .with_context(|| format!("setsockopt {what}"))?;
        }

        let off = mmap_offsets(&sock)?;
        let mut fill = ProdRing::new(Ring::open(
            &sock,
            &off.fr,
            fill_size,
            libc::XDP_UMEM_PGOFF_FILL_RING,
        )?);
        let completion = ConsRing::new(Ring::open(
            &sock,
            &off.cr,
            tx_size,
            libc::XDP_UMEM_PGOFF_COMPLETION_RING,
        )?);
        let rx = ConsRing::new(Ring::open(
            &sock,
            &off.rx,
            rx_size,
            libc::XDP_PGOFF_RX_RING as u64,
        )?);
        let tx = ProdRing::new(Ring::open(
            &sock,
            &off.tx,
            tx_size,
            libc::XDP_PGOFF_TX_RING as u64,
        )?);

        bind(&sock, ifindex).with_context(|| {
            format!("bind AF_XDP socket to {ifname} queue {QUEUE_ID} (copy mode)")
        })?;

        let chunk = chunk_size as u64;
        for i in 0..u64::from(rx_chunks) {
            ensure!(fill.push(i * chunk), "AF_XDP fill ring full");
        }
        fill.submit();
        let free_tx = (u64::from(rx_chunks)..u64::from(frames))
            .map(|i| i * chunk)
            .collect();

        let xskmap = create_xskmap()?;
        let program = load_program(ethertype, &xskmap)?;
        register_socket(&xskmap, &sock)?;
        let attachment =
            attach(&program, ifindex).with_context(|| format!("attach XDP program to {ifname}"))?;

        Ok(Self {
            _attachment: attachment,
            rx,
            fill,
            tx,
            completion,
            sock,
            umem,
            chunk_size,
            free_tx,
            unfilled: Vec::new(),
            partial: Vec::new(),
        })
    }

    /// Offset in the UMEM of the `len` bytes at `addr`, checked to lie
    /// inside it.
    fn umem_offset(&self, addr: u64, len: usize) -> Result<usize> {
        usize::try_from(addr)
            .ok()
            .filter(|&start| {
                start
                    .checked_add(len)
                    .is_some_and(|end| end <= self.umem.len)
            })
            .with_context(|| format!("AF_XDP descriptor {addr:#x}+{len} outside the UMEM"))
    }

    /// Start of the chunk holding UMEM address `addr`.
    fn chunk_of(&self, addr: u64) -> u64 {
        addr & !(self.chunk_size as u64 - 1)
    }

    /// Puts receive chunks on the fill ring that found no room there
    /// before, as far as there is room now.
    fn refill(&mut self) {
        if self.unfilled.is_empty() {
            return;
        }
        while let Some(&chunk) = self.unfilled.last() {
            if !self.fill.push(chunk) {
                break;
            }
            self.unfilled.pop();
        }
        self.fill.submit();
    }

    /// Takes back the TX chunks the kernel has finished sending.
    fn reclaim(&mut self) {
        let n = self.completion.available();
        for i in 0..n {
            let addr = self.completion.get(i);
            self.free_tx.push(self.chunk_of(addr));
        }
        self.completion.release(n);
    }

    /// Returns a free TX chunk, reclaiming completed ones and, if there are
    /// none, pushing out queued frames and waiting for some to complete.
    fn take_tx_chunk(&mut self) -> Result<u64> {
        if let Some(addr) = self.free_tx.pop() {
            return Ok(addr);
        }
        self.reclaim();
        if let Some(addr) = self.free_tx.pop() {
            return Ok(addr);
        }
        self.flush()?;
        let start = Instant::now();
        loop {
            if let Some(addr) = self.free_tx.pop() {
                return Ok(addr);
            }
            ensure!(
                start.elapsed() < TX_STALL,
                "AF_XDP: no TX chunk came back within {TX_STALL:?}"
            );
            std::thread::yield_now();
            self.reclaim();
        }
    }

    /// Has the kernel transmit what the TX ring holds.
    ///
    /// In copy mode frames go out only from `sendto()` (or `poll()`), and
    /// the TX ring's need-wakeup flag is maintained only by zero-copy
    /// drivers, so this always calls `sendto()`. Each call sends a bounded
    /// batch (32 frames by default); `EAGAIN` asks for another call, `EBUSY`
    /// reports a frame the device dropped and `ENOBUFS` a failed buffer
    /// allocation, none of which is fatal.
    fn kick_tx(&self) -> Result<()> {
        // SAFETY: a zero-length send reads no buffer and no address.
        let ret = unsafe {
            libc::sendto(
                self.sock.as_raw_fd(),
                ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                ptr::null(),
                0,
            )
        };
        if ret < 0 {
            let err = io::Error::last_os_error();
            if !matches!(
                err.raw_os_error(),
                Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::EINTR)
            ) {
                return Err(err).context("sendto on AF_XDP socket");
            }
        }
        Ok(())
    }

    /// Asks the kernel to refill its receive buffers from the fill ring if it
    /// says it needs waking up (only zero-copy drivers do).
    fn kick_fill(&self) {
        if self.fill.ring.needs_wakeup() {
            // SAFETY: a zero-length receive writes no buffer and no address.
            // The call is only a wakeup; errors leave nothing to handle.
            unsafe {
                libc::recvfrom(
                    self.sock.as_raw_fd(),
                    ptr::null_mut(),
                    0,
                    libc::MSG_DONTWAIT,
                    ptr::null_mut(),
                    ptr::null_mut(),
                )
            };
        }
    }

    /// The socket's `XDP_STATISTICS` counters.
    fn statistics(&self) -> io::Result<libc::xdp_statistics> {
        let mut stats = libc::xdp_statistics {
            rx_dropped: 0,
            rx_invalid_descs: 0,
            tx_invalid_descs: 0,
            rx_ring_full: 0,
            rx_fill_ring_empty_descs: 0,
            tx_ring_empty_descs: 0,
        };
        let mut len = size_of::<libc::xdp_statistics>() as libc::socklen_t;
        // SAFETY: `stats` is writable for `len` bytes and `len` is a valid
        // `socklen_t` the kernel updates.
        let ret = unsafe {
            libc::getsockopt(
                self.sock.as_raw_fd(),
                libc::SOL_XDP,
                libc::XDP_STATISTICS,
                ptr::from_mut(&mut stats).cast::<c_void>(),
                &mut len,
            )
        };
        if ret < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(stats)
        }
    }

    /// Waits until the socket is readable or `timeout` passes; returns
    /// whether frames may be ready.
    fn wait_readable(&self, timeout: Option<Duration>) -> Result<bool> {
        let millis = match timeout {
            None => -1,
            Some(left) if left.is_zero() => return Ok(false),
            Some(left) => {
                c_int::try_from(left.as_nanos().div_ceil(1_000_000)).unwrap_or(c_int::MAX)
            }
        };
        let mut pfd = libc::pollfd {
            fd: self.sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid `pollfd` and we pass a count of 1.
        let ret = unsafe { libc::poll(&mut pfd, 1, millis) };
        if ret < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err).context("poll on AF_XDP socket");
            }
        }
        Ok(true)
    }
}

impl Link for XdpLink {
    fn send(&mut self, frame: &[u8]) -> Result<()> {
        ensure!(
            !frame.is_empty() && frame.len() <= self.max_frame(),
            "frame of {} bytes: AF_XDP copy mode here carries 1 to {} bytes",
            frame.len(),
            self.max_frame()
        );
        let pieces = frame.chunks(self.chunk_size);
        let n = pieces.len();
        // Chunks and ring room for every piece first: taking a chunk may
        // flush the ring, which must then hold whole frames only.
        let mut addrs = [0u64; MAX_FRAGS];
        for i in 0..n {
            match self.take_tx_chunk() {
                Ok(addr) => addrs[i] = addr,
                Err(err) => {
                    self.free_tx.extend_from_slice(&addrs[..i]);
                    return Err(err);
                }
            }
        }
        if self.tx.free(n as u32) < n as u32 {
            self.flush()?;
        }
        if self.tx.free(n as u32) < n as u32 {
            self.free_tx.extend_from_slice(&addrs[..n]);
            bail!("AF_XDP TX ring full");
        }
        for (i, (piece, &addr)) in pieces.zip(&addrs[..n]).enumerate() {
            // A piece fits its chunk: pieces are at most a chunk long and
            // chunks are chunk-aligned inside the UMEM.
            let start = self.umem_offset(addr, piece.len())?;
            // SAFETY: the destination lies inside the UMEM (checked above),
            // in a TX chunk that is ours: never handed to the kernel, or
            // handed back through the completion ring, so the kernel neither
            // reads nor writes it now. `piece` is a Rust slice, so it cannot
            // overlap the UMEM, which Rust code reaches only through raw
            // pointers.
            unsafe { ptr::copy_nonoverlapping(piece.as_ptr(), self.umem.as_ptr().add(start), piece.len()) };
            let options = if i + 1 < n { libc::XDP_PKT_CONTD } else { 0 };
            // Room for all `n` was checked above.
            self.tx.push(libc::xdp_desc { addr, len: piece.len() as u32, options });
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.tx.submit();
        let start = Instant::now();
        loop {
            let queued = self.tx.unconsumed();
            if queued == 0 {
                break;
            }
            self.kick_tx()?;
            self.reclaim();
            ensure!(
                start.elapsed() < TX_STALL,
                "AF_XDP TX stalled: kernel left {queued} frames queued for {TX_STALL:?}"
            );
        }
        self.reclaim();
        Ok(())
    }

    fn recv(&mut self, timeout: Duration, f: &mut dyn FnMut(&[u8])) -> Result<usize> {
        self.refill();
        let deadline = Instant::now().checked_add(timeout);
        let n = loop {
            let n = self.rx.available();
            if n > 0 {
                break n;
            }
            self.kick_fill();
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if !self.wait_readable(left)? {
                return Ok(0);
            }
        };
        let mut frames = 0;
        for i in 0..n {
            let desc = self.rx.get(i);
            let len = desc.len as usize;
            let start = self.umem_offset(desc.addr, len)?;
            // SAFETY: the range lies inside the UMEM (checked above), in a
            // chunk the kernel handed to us through the RX ring after writing
            // it; it will not write there again until we put the chunk back
            // on the fill ring below, after the slice is gone.
            let piece = unsafe { std::slice::from_raw_parts(self.umem.as_ptr().add(start), len) };
            let more = desc.options & libc::XDP_PKT_CONTD != 0;
            if more || !self.partial.is_empty() {
                // A fragment: gathered until the frame's last one.
                self.partial.extend_from_slice(piece);
                if !more {
                    f(&self.partial);
                    self.partial.clear();
                    frames += 1;
                }
            } else {
                f(piece);
                frames += 1;
            }
            let chunk = self.chunk_of(desc.addr);
            if !self.fill.push(chunk) {
                self.unfilled.push(chunk);
            }
        }
        self.rx.release(n);
        self.fill.submit();
        Ok(frames)
    }

    /// Largest frame: [`MAX_FRAGS`] chunks' worth behind the receive
    /// headroom, 4 × (4096 - 256) = 15360 bytes with 4 KiB pages (see the
    /// module documentation).
    fn max_frame(&self) -> usize {
        (self.chunk_size - XDP_PACKET_HEADROOM) * MAX_FRAGS
    }

    /// The socket's `XDP_STATISTICS`: `rx_dropped` counts, among others,
    /// received frames too long for a chunk; `rx_fill_ring_empty_descs` and
    /// `rx_ring_full` count frames lost for want of buffers or ring room.
    fn counters(&self) -> Vec<(String, u64)> {
        let Ok(stats) = self.statistics() else {
            return Vec::new();
        };
        [
            ("rx_dropped", stats.rx_dropped),
            ("rx_invalid_descs", stats.rx_invalid_descs),
            ("tx_invalid_descs", stats.tx_invalid_descs),
            ("rx_ring_full", stats.rx_ring_full),
            ("rx_fill_ring_empty_descs", stats.rx_fill_ring_empty_descs),
            ("tx_ring_empty_descs", stats.tx_ring_empty_descs),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect()
    }
}
