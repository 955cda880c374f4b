//! User-space side of polynic's BQI demux device (`/dev/bqi`).
//!
//! An [`Endpoint`] is an open `/dev/bqi` file that a privileged process has
//! configured ([`configure`]) and whose shared area this process has mapped:
//! received frames arrive as events pointing into its buffers, and frames
//! are sent by writing them into a buffer and posting a descriptor. The
//! layout and the memory ordering are those of `polynic_abi::bqi` (and
//! `docs/bqi.md`); this crate only drives them.
//!
//! Buffers are split once: half are lent to the kernel's receive pool (each
//! returned by [`Endpoint::release`] once the application is done with a
//! received frame), half are kept for sending and reclaimed lazily from the
//! kernel's cumulative send counter.

pub mod iface;
pub mod neigh;
pub mod registry;

use polynic_abi::bqi::{self, EndpointConfig, Event, EventKind, Info, Layout, Request};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::time::Duration;

/// Where the device node is.
pub const DEVICE: &str = "/dev/bqi";

/// What went wrong, each case distinct.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The device node is missing: the module is not loaded.
    #[error("{0}: no BQI device (is the bqi module loaded?)")]
    NoDevice(String),
    /// The caller may not configure endpoints.
    #[error("configuring an endpoint needs CAP_NET_ADMIN")]
    NotPermitted,
    /// The endpoint is configured already (sealed).
    #[error("the endpoint is configured already and cannot be changed")]
    Sealed,
    /// The buffer queue index or the flow is taken.
    #[error("that buffer queue index or flow is in use")]
    InUse,
    /// The configuration was refused.
    #[error("configuration refused: {0}")]
    BadConfig(String),
    /// The device went away; the endpoint has ended.
    #[error("the endpoint's device is gone")]
    Ended,
    /// No send buffer is free: the kernel has not finished earlier sends.
    #[error("no free send buffer")]
    NoBuffer,
    /// A frame larger than a buffer.
    #[error("frame of {0} bytes does not fit a {1}-byte buffer")]
    TooBig(usize, u32),
    /// Any other system call failure.
    #[error("{0}: {1}")]
    Os(&'static str, std::io::Error),
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

fn last_os(what: &'static str) -> Error {
    Error::Os(what, std::io::Error::last_os_error())
}

/// Opens the device: an unconfigured endpoint.
pub fn open(path: impl AsRef<Path>) -> Result<OwnedFd> {
    let path = path.as_ref();
    let file: File = OpenOptions::new().read(true).write(true).open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NoDevice(path.display().to_string()),
        _ => Error::Os("open", e),
    })?;
    Ok(file.into())
}

/// Configures an endpoint (needs `CAP_NET_ADMIN`; once per file).
pub fn configure(fd: BorrowedFd<'_>, config: &EndpointConfig) -> Result<()> {
    let bytes = config.to_bytes();
    // SAFETY: `bytes` is a readable buffer of the size the command encodes.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), bqi::IOC_CONFIGURE as _, bytes.as_ptr()) };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    Err(match err.raw_os_error() {
        Some(libc::EPERM) => Error::NotPermitted,
        Some(libc::EBUSY) => Error::Sealed,
        Some(libc::EADDRINUSE) => Error::InUse,
        Some(libc::ENODEV) => Error::Ended,
        Some(libc::EINVAL) => Error::BadConfig("invalid field".into()),
        Some(libc::EMSGSIZE) => Error::BadConfig("buffers smaller than the device's largest frame".into()),
        _ => Error::Os("configure", err),
    })
}

/// A received frame: its buffer is the application's until
/// [`Endpoint::release`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Buffer index.
    pub buffer: u32,
    /// Frame length, Ethernet header included.
    pub len: u32,
    /// The kernel vouches for the transport checksum (see
    /// [`bqi::RX_CHECKSUM_TRUSTED`]): a protocol library need not check it.
    pub checksum_trusted: bool,
}

/// What [`Endpoint::poll_event`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// A frame.
    Frame(Received),
    /// An error the kernel reported ([`EventKind`] and its code).
    Error(Event),
    /// The device went away.
    Ended,
}

/// A configured, mapped endpoint.
pub struct Endpoint {
    fd: OwnedFd,
    base: *mut u8,
    info: Info,
    layout: Layout,
    /// Next request position to write.
    req_head: u32,
    /// Next event position to read.
    evt_pos: u32,
    /// Send buffers free for the application.
    free_send: Vec<u32>,
    /// Send buffers posted, in order, not yet known finished.
    in_flight: VecDeque<u32>,
    /// Sends known finished (the kernel's counter, last seen).
    sends_done: u32,
    /// Sends posted so far (wrapping).
    sends_posted: u32,
    /// Refills written but not yet made visible.
    staged: u32,
    /// Received buffers given back while the request queue had no room.
    unrefilled: Vec<u32>,
}

// SAFETY: The mapping is owned by the endpoint and only touched through
// `&mut self` or atomics.
unsafe impl Send for Endpoint {}

impl Endpoint {
    /// Maps a configured endpoint and lends half of its buffers to the
    /// receive pool.
    pub fn map(fd: OwnedFd) -> Result<Self> {
        let mut raw = [0u8; bqi::INFO_LEN];
        // SAFETY: `raw` is writable for the size the command encodes.
        if unsafe { libc::ioctl(fd.as_raw_fd(), bqi::IOC_INFO as _, raw.as_mut_ptr()) } != 0 {
            let err = std::io::Error::last_os_error();
            return Err(match err.raw_os_error() {
                Some(libc::ENOTCONN) => Error::BadConfig("the endpoint is not configured".into()),
                _ => Error::Os("info", err),
            });
        }
        let info = Info::from_bytes(&raw).ok_or_else(|| Error::BadConfig("the kernel's info block is invalid".into()))?;
        let layout = Layout::new(info.buf_size, info.buf_count, info.req_entries, info.evt_entries)
            .ok_or_else(|| Error::BadConfig("layout".into()))?;
        // SAFETY: A new shared mapping of the file, as long as its area.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                info.area_len as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(last_os("mmap"));
        }
        let count = info.buf_count;
        let rx = count.div_ceil(2).min(info.req_entries);
        let mut ep = Endpoint {
            fd,
            base: base.cast(),
            info,
            layout,
            req_head: 0,
            evt_pos: 0,
            free_send: (rx..count).rev().collect(),
            in_flight: VecDeque::new(),
            sends_done: 0,
            sends_posted: 0,
            staged: 0,
            unrefilled: Vec::new(),
        };
        for b in 0..rx {
            ep.stage(Request::Refill { buffer: b });
        }
        // The pool must be filled before the first frame: ring now.
        ep.make_visible();
        ep.kick()?;
        Ok(ep)
    }

    /// The kernel's description of the area.
    pub fn info(&self) -> &Info {
        &self.info
    }

    /// The request queue position the next descriptor goes to.
    pub fn request_head(&self) -> u32 {
        self.req_head
    }

    /// The endpoint's file (for `poll`, `epoll`, handing on).
    pub fn fd(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.fd.as_fd()
    }

    fn word(&self, offset: u32) -> &AtomicU32 {
        debug_assert!(offset as usize + 4 <= self.info.area_len as usize);
        // SAFETY: Offsets come from the ABI's constants or the layout, within
        // the mapping, 4-byte aligned; the word is only accessed atomically.
        unsafe { AtomicU32::from_ptr(self.base.add(offset as usize).cast()) }
    }

    /// Writes a request descriptor at the next position, not yet visible.
    fn stage(&mut self, r: Request) {
        let at = self.layout.request(self.req_head.wrapping_add(self.staged));
        for (i, chunk) in r.to_bytes().chunks_exact(4).enumerate() {
            let v = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            self.word(at + 4 * i as u32).store(v, Ordering::Relaxed);
        }
        self.staged += 1;
    }

    /// Room in the request queue for `n` more descriptors.
    fn request_room(&self) -> u32 {
        let tail = self.word(bqi::REQ_TAIL).load(Ordering::Acquire);
        let used = self.req_head.wrapping_add(self.staged).wrapping_sub(tail);
        self.info.req_entries.saturating_sub(used)
    }

    /// Makes staged requests visible; rings the doorbell only if the kernel
    /// says it is needed.
    fn publish(&mut self) -> Result<()> {
        self.make_visible();
        fence(Ordering::SeqCst);
        // Ring only if the kernel is not taking requests and some wait: what
        // `release` made visible counts too.
        if self.word(bqi::FLAGS).load(Ordering::Relaxed) & bqi::FLAG_NEED_WAKEUP != 0
            && self.word(bqi::REQ_TAIL).load(Ordering::Acquire) != self.req_head
        {
            self.kick()?;
        }
        Ok(())
    }

    /// Makes staged requests visible to the kernel (no doorbell).
    fn make_visible(&mut self) {
        if self.staged == 0 {
            return;
        }
        self.req_head = self.req_head.wrapping_add(self.staged);
        self.staged = 0;
        self.word(bqi::REQ_HEAD).store(self.req_head, Ordering::Release);
    }

    /// The doorbell: makes the kernel take every pending request. The
    /// kernel takes a bounded amount per call and says `EAGAIN` when it
    /// left some (another thread kept producing): the bell is rung again.
    pub fn kick(&self) -> Result<()> {
        loop {
            // SAFETY: The command takes no argument.
            if unsafe { libc::ioctl(self.fd.as_raw_fd(), bqi::IOC_KICK as _, 0) } >= 0 {
                return Ok(());
            }
            let err = std::io::Error::last_os_error();
            return Err(match err.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => continue,
                Some(libc::ENODEV) => Error::Ended,
                _ => Error::Os("kick", err),
            });
        }
    }

    /// Takes back send buffers the kernel has finished with.
    fn reclaim(&mut self) {
        let done = self.word(bqi::SENDS_DONE).load(Ordering::Acquire);
        let mut newly = done.wrapping_sub(self.sends_done);
        // Never more than posted: a garbage counter frees nothing twice.
        newly = newly.min(self.in_flight.len() as u32);
        for _ in 0..newly {
            if let Some(b) = self.in_flight.pop_front() {
                self.free_send.push(b);
            }
        }
        self.sends_done = self.sends_done.wrapping_add(newly);
    }

    /// Sends one frame (Ethernet header included).
    pub fn send(&mut self, frame: &[u8]) -> Result<()> {
        self.send_raw(frame, self.sends_posted)
    }

    /// Sends one frame with `cookie`, which an error event would carry.
    pub fn send_raw(&mut self, frame: &[u8], cookie: u32) -> Result<()> {
        self.queue_raw(frame, cookie)?;
        self.publish()
    }

    /// Queues one frame without making it visible to the kernel yet: a
    /// batch goes out at the next [`Endpoint::flush`] (one doorbell at most).
    pub fn queue(&mut self, frame: &[u8]) -> Result<()> {
        self.queue_raw(frame, self.sends_posted)
    }

    /// Makes queued frames visible, ringing the doorbell if the kernel asks.
    pub fn flush(&mut self) -> Result<()> {
        self.publish()
    }

    fn queue_raw(&mut self, frame: &[u8], cookie: u32) -> Result<()> {
        if frame.len() > self.info.buf_size as usize {
            return Err(Error::TooBig(frame.len(), self.info.buf_size));
        }
        self.reclaim();
        if self.request_room() == 0 || self.free_send.is_empty() {
            // Out of slots or buffers: let the kernel take what is queued.
            self.publish()?;
            self.kick()?;
            self.reclaim();
            if self.request_room() == 0 {
                return Err(Error::NoBuffer);
            }
        }
        let buffer = self.free_send.pop().ok_or(Error::NoBuffer)?;
        self.write_buffer(buffer, frame);
        self.stage(Request::Send { buffer, len: frame.len() as u32, cookie });
        self.in_flight.push_back(buffer);
        self.sends_posted = self.sends_posted.wrapping_add(1);
        Ok(())
    }

    fn write_buffer(&mut self, buffer: u32, frame: &[u8]) {
        if let Some(at) = self.layout.buffer(buffer) {
            // SAFETY: The buffer lies within the mapping (layout) and is the
            // application's (it is not in the kernel's pool), so nothing else
            // writes it.
            unsafe { std::ptr::copy_nonoverlapping(frame.as_ptr(), self.base.add(at as usize), frame.len()) };
        }
    }

    /// Whether an event is ready (a read of shared memory, no system call:
    /// what a busy-polling application spins on).
    pub fn event_ready(&self) -> bool {
        let at = self.layout.event(self.evt_pos);
        self.word(at).load(Ordering::Acquire) == bqi::event_seq(self.evt_pos)
    }

    /// The next event, if one is ready (never blocks).
    pub fn poll_event(&mut self) -> Option<Next> {
        let at = self.layout.event(self.evt_pos);
        if self.word(at).load(Ordering::Acquire) != bqi::event_seq(self.evt_pos) {
            return None;
        }
        let mut body = [0u8; 12];
        for (i, chunk) in body.chunks_exact_mut(4).enumerate() {
            chunk.copy_from_slice(&self.word(at + 4 + 4 * i as u32).load(Ordering::Relaxed).to_ne_bytes());
        }
        self.evt_pos = self.evt_pos.wrapping_add(1);
        self.word(bqi::EVT_TAIL).store(self.evt_pos, Ordering::Release);
        let event = Event::parse_body(&body)?;
        Some(match event.kind {
            EventKind::Received => Next::Frame(Received {
                buffer: event.buffer,
                len: event.value,
                checksum_trusted: event.code & bqi::RX_CHECKSUM_TRUSTED != 0,
            }),
            EventKind::Ended => Next::Ended,
            _ => Next::Error(event),
        })
    }

    /// Waits up to `timeout` for an event (busy-polls memory first, then
    /// sleeps in `poll`).
    pub fn wait(&mut self, timeout: Duration) -> Result<Option<Next>> {
        if let Some(n) = self.poll_event() {
            return Ok(Some(n));
        }
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Ok(self.poll_event());
            }
            let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: One valid pollfd.
            let rc = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
            if rc < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                return Err(last_os("poll"));
            }
            if let Some(n) = self.poll_event() {
                return Ok(Some(n));
            }
            if pfd.revents & libc::POLLHUP != 0 {
                return Ok(Some(Next::Ended));
            }
        }
    }

    /// The bytes of a received frame.
    pub fn frame(&self, r: &Received) -> &[u8] {
        let at = self.layout.buffer(r.buffer).unwrap_or(0) as usize;
        let len = (r.len.min(self.info.buf_size)) as usize;
        // SAFETY: Within the mapping (layout); the buffer is the
        // application's until released, so the kernel does not write it.
        unsafe { std::slice::from_raw_parts(self.base.add(at), len) }
    }

    /// Gives a received frame's buffer back to the receive pool.
    pub fn release(&mut self, r: Received) -> Result<()> {
        self.unrefilled.push(r.buffer);
        if self.request_room() == 0 {
            // The queue is full of requests the kernel has not taken yet
            // (sends and refills of a burst): it takes them now.
            self.make_visible();
            self.kick()?;
        }
        // A refill never overwrites a request the kernel has not taken; one
        // without room waits for the next release.
        while self.request_room() > 0 {
            let Some(buffer) = self.unrefilled.pop() else { break };
            self.stage(Request::Refill { buffer });
        }
        // Refills are taken by the next doorbell or, when the pool runs dry,
        // by the kernel's receive path: no doorbell for them alone.
        self.make_visible();
        Ok(())
    }

    /// The endpoint's counters, by name.
    pub fn stats(&self) -> Result<Vec<(&'static str, u64)>> {
        let mut raw = [0u8; bqi::STATS_LEN];
        // SAFETY: `raw` is writable for the size the command encodes.
        if unsafe { libc::ioctl(self.fd.as_raw_fd(), bqi::IOC_STATS as _, raw.as_mut_ptr()) } != 0 {
            return Err(last_os("stats"));
        }
        Ok(bqi::STAT_NAMES
            .iter()
            .zip(raw.chunks_exact(8))
            .map(|(n, c)| (*n, u64::from_ne_bytes(c.try_into().unwrap_or([0; 8]))))
            .collect())
    }

    /// The counters of the endpoint's device's demultiplexer, by name.
    pub fn device_stats(&self) -> Result<Vec<(&'static str, u64)>> {
        let mut raw = [0u8; bqi::DEVICE_STATS_LEN];
        // SAFETY: `raw` is writable for the size the command encodes.
        if unsafe { libc::ioctl(self.fd.as_raw_fd(), bqi::IOC_DEVICE_STATS as _, raw.as_mut_ptr()) } != 0 {
            return Err(last_os("device stats"));
        }
        Ok(bqi::DEVICE_STAT_NAMES
            .iter()
            .zip(raw.chunks_exact(8))
            .map(|(n, c)| (*n, u64::from_ne_bytes(c.try_into().unwrap_or([0; 8]))))
            .collect())
    }

    /// Raw access for tests of the kernel's checks: writes `words` as the
    /// request descriptor at the next position and publishes `head` as the
    /// request head, whatever it is.
    pub fn post_raw(&mut self, descriptor: [u8; 16], head: u32) -> Result<()> {
        let at = self.layout.request(self.req_head);
        for (i, chunk) in descriptor.chunks_exact(4).enumerate() {
            let v = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            self.word(at + 4 * i as u32).store(v, Ordering::Relaxed);
        }
        self.word(bqi::REQ_HEAD).store(head, Ordering::Release);
        let r = self.kick();
        if head.wrapping_sub(self.req_head) <= self.info.req_entries {
            self.req_head = head;
        } else {
            // Put the head back where it was so the endpoint stays usable.
            self.word(bqi::REQ_HEAD).store(self.req_head, Ordering::Release);
        }
        r
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        // SAFETY: The mapping made in `map`, unmapped once.
        unsafe { libc::munmap(self.base.cast(), self.info.area_len as usize) };
    }
}

/// Configuration helpers.
pub fn endpoint_config(kind: bqi::EndpointKind, ifindex: u32) -> EndpointConfig {
    EndpointConfig {
        ifindex,
        kind,
        bqi: 0,
        peer_bqi: 0,
        local_ip: [0; 4],
        remote_ip: [0; 4],
        local_port: 0,
        remote_port: 0,
        buf_size: 16384,
        buf_count: 64,
        req_entries: 128,
        evt_entries: 128,
    }
}
