//! A raw packet socket bound to one interface and the EBD request
//! ethertype, with batched receive (`recvmmsg`) and send (`sendmmsg`).

use crate::{
    link::{classify, LinkInfo, Recovery},
    outbox::Frame,
};
use polynic_abi::ebd::ETH_P_EBD_REQUEST;
use std::{
    ffi::CString,
    io,
    mem::{size_of, zeroed},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

/// Largest frame received (jumbo MTU plus headers).
pub const MAX_FRAME: usize = 9216 + 64;

/// Most frames handed to one `sendmmsg`.
const SEND_BATCH: usize = 256;

/// Requests of this many bytes and more are spread over the serving
/// threads ([`PacketSocket::steer_fanout_by_queue`]).
pub const LARGE_REQUEST: u32 = 64 * 1024;

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// The server's socket on its interface.
pub struct PacketSocket {
    fd: OwnedFd,
    /// The interface's name.
    pub name: String,
    /// The interface as it was when the socket was bound to it.
    pub link: LinkInfo,
}

/// What became of the frames handed to [`PacketSocket::send_all`]. Frames
/// that are not sent are lost; the client retransmits.
#[derive(Debug, Default)]
pub struct SendReport {
    /// Frames the device refused (queue full, filtered) or that were not
    /// sent because the link was down or gone.
    pub dropped: usize,
    /// Frames larger than the link's MTU: it was lowered.
    pub too_big: usize,
    /// The link was down (or away) when sending.
    pub link_down: bool,
    /// The interface the socket is bound to is gone.
    pub gone: bool,
    /// Frames whose payload, in a mapped export, the kernel could not read
    /// (`EFAULT`: the file was cut short under the server, or its device
    /// went). Lost; the caller stops answering reads from mappings.
    pub unreadable: usize,
    /// An error that says the program is wrong; serving stops.
    pub fatal: Option<io::Error>,
}

fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    let c = CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name has a NUL"))?;
    let bytes = c.as_bytes_with_nul();
    // SAFETY: `ifreq` is plain old data; all-zero is valid.
    let mut req: libc::ifreq = unsafe { zeroed() };
    if bytes.len() > req.ifr_name.len() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "interface name too long"));
    }
    for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    Ok(req)
}

/// Reads what interface `name` is now, with ioctls on any socket `fd`.
fn query_link(fd: &OwnedFd, name: &str) -> io::Result<LinkInfo> {
    let mut req = ifreq(name)?;
    // SAFETY: SIOCGIFINDEX reads the name and writes the index in `req`.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFINDEX, &mut req) })?;
    // SAFETY: The ioctl above filled the index member of the union.
    let ifindex = unsafe { req.ifr_ifru.ifru_ifindex };
    let mut req = ifreq(name)?;
    // SAFETY: SIOCGIFHWADDR writes the address into `req`.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) })?;
    let mut mac = [0u8; 6];
    // SAFETY: The ioctl above filled the hardware-address member.
    let hw = unsafe { req.ifr_ifru.ifru_hwaddr };
    for (d, s) in mac.iter_mut().zip(hw.sa_data.iter()) {
        *d = *s as u8;
    }
    let mut req = ifreq(name)?;
    // SAFETY: SIOCGIFMTU writes the MTU into `req`.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFMTU, &mut req) })?;
    // SAFETY: The ioctl above filled the MTU member.
    let mtu = u32::try_from(unsafe { req.ifr_ifru.ifru_mtu }).unwrap_or(1500);
    Ok(LinkInfo { ifindex, mac, mtu })
}

impl PacketSocket {
    /// Opens and binds a socket on `interface`.
    pub fn open(interface: &str) -> io::Result<Self> {
        let proto = ETH_P_EBD_REQUEST.to_be();
        // SAFETY: Plain system call with integer arguments.
        let raw = check(unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, i32::from(proto)) })?;
        // SAFETY: `raw` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let link = query_link(&fd, interface)?;

        // SAFETY: `sockaddr_ll` is plain old data; all-zero is valid.
        let mut addr: libc::sockaddr_ll = unsafe { zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = proto;
        addr.sll_ifindex = link.ifindex;
        // SAFETY: `addr` is a valid sockaddr_ll of the given size.
        check(unsafe {
            libc::bind(fd.as_raw_fd(), (&addr as *const libc::sockaddr_ll).cast(), size_of::<libc::sockaddr_ll>() as u32)
        })?;
        let s = PacketSocket { fd, name: interface.to_string(), link };
        // Room for bursts of a deep client queue; the force variant needs
        // CAP_NET_ADMIN, the plain one is capped by sysctl.
        for (force, plain) in [(libc::SO_RCVBUFFORCE, libc::SO_RCVBUF), (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF)] {
            if s.set_int(force, 32 << 20).is_err() {
                let _ = s.set_int(plain, 32 << 20);
            }
        }
        Ok(s)
    }

    /// What the interface of the socket's name is now: its index differs
    /// from [`PacketSocket::link`]'s if it was re-created (the socket then
    /// receives nothing more), and its MTU or address may have changed.
    pub fn query(&self) -> io::Result<LinkInfo> {
        query_link(&self.fd, &self.name)
    }

    fn set_int(&self, opt: libc::c_int, v: libc::c_int) -> io::Result<()> {
        self.set_opt(libc::SOL_SOCKET, opt, &v)
    }

    fn set_opt<T>(&self, level: libc::c_int, opt: libc::c_int, v: &T) -> io::Result<()> {
        // SAFETY: `v` is a live value of the size passed, only read.
        check(unsafe {
            libc::setsockopt(self.fd.as_raw_fd(), level, opt, (v as *const T).cast(), size_of::<T>() as u32)
        })
        .map(|_| ())
    }

    /// Joins fanout group `group`, whose sockets (one per serving thread)
    /// share the interface's request frames.
    pub fn join_fanout(&self, group: u16) -> io::Result<()> {
        let arg: u32 = u32::from(group) | (libc::PACKET_FANOUT_CBPF << 16);
        self.set_opt(libc::SOL_PACKET, libc::PACKET_FANOUT, &arg)
    }

    /// Installs the group's steering program (on any one member, after all
    /// have joined). A client queue's small requests (below 64 KiB) all go
    /// to one thread, the queue's index (the tag's upper half, see the
    /// protocol) modulo the number of threads: they are answered in order
    /// by one thread and, on a link that delivers on the sending CPU, their
    /// responses reach the client on one CPU. Large requests are spread
    /// over the threads by queue and slot, every frame of one request
    /// staying with one thread: a single stream of them would otherwise
    /// wait for one thread's copies while the others idle.
    pub fn steer_fanout_by_queue(&self) -> io::Result<()> {
        // Classic BPF over the frame after the Ethernet header (the EBD
        // header, big-endian); the kernel takes the result modulo the group
        // size.
        const LD_W_ABS: u16 = 0x20;
        const LD_H_ABS: u16 = 0x28;
        const JGE_K: u16 = 0x35;
        const ADD_X: u16 = 0x0c;
        const TAX: u16 = 0x07;
        const TXA: u16 = 0x87;
        const RET_A: u16 = 0x16;
        let insn = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
        let mut program = [
            insn(LD_H_ABS, 0, 0, 4),          // A = tag >> 16, the client's queue
            insn(TAX, 0, 0, 0),               // X = queue
            insn(LD_W_ABS, 0, 0, 24),         // A = request length
            insn(JGE_K, 2, 0, LARGE_REQUEST), // large: spread
            insn(TXA, 0, 0, 0),               // small: socket = queue % threads
            insn(RET_A, 0, 0, 0),
            insn(LD_H_ABS, 0, 0, 6), // A = tag & 0xffff, the request's slot
            insn(ADD_X, 0, 0, 0),    // socket = (slot + queue) % threads
            insn(RET_A, 0, 0, 0),
        ];
        let fprog = libc::sock_fprog { len: program.len() as u16, filter: program.as_mut_ptr() };
        self.set_opt(libc::SOL_PACKET, libc::PACKET_FANOUT_DATA, &fprog)
    }

    /// Makes a blocked receive return every `ms` milliseconds with nothing,
    /// so a serving thread notices it is asked to stop.
    pub fn set_receive_timeout(&self, ms: u32) -> io::Result<()> {
        let tv = libc::timeval { tv_sec: (ms / 1000).into(), tv_usec: ((ms % 1000) * 1000).into() };
        self.set_opt(libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)
    }

    /// Waits for at least one frame and receives up to `bufs.len()`;
    /// returns how many, with each frame's length in `lens`. Frames the
    /// host itself sent are skipped (their length is 0).
    pub fn recv_batch(&self, bufs: &mut [Vec<u8>], lens: &mut [usize]) -> io::Result<usize> {
        self.recv_batch_with(bufs, lens, libc::MSG_WAITFORONE)
    }

    /// Whether a frame is queued, without waiting and without allocating
    /// (what a polling thread asks between batches).
    pub fn readable(&self) -> io::Result<bool> {
        let mut fd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: One valid pollfd, for the duration of the call.
        let ready = check(unsafe { libc::poll(&mut fd, 1, 0) })?;
        Ok(ready > 0)
    }

    /// Like [`PacketSocket::recv_batch`], without waiting: `WouldBlock`
    /// if no frame is queued.
    pub fn try_recv_batch(&self, bufs: &mut [Vec<u8>], lens: &mut [usize]) -> io::Result<usize> {
        self.recv_batch_with(bufs, lens, libc::MSG_DONTWAIT)
    }

    fn recv_batch_with(&self, bufs: &mut [Vec<u8>], lens: &mut [usize], flags: libc::c_int) -> io::Result<usize> {
        let n = bufs.len().min(lens.len());
        let mut iov: Vec<libc::iovec> = bufs[..n]
            .iter_mut()
            .map(|b| {
                b.resize(MAX_FRAME, 0);
                libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() }
            })
            .collect();
        // SAFETY: All-zero is a valid sockaddr_ll and mmsghdr.
        let mut names: Vec<libc::sockaddr_ll> = vec![unsafe { zeroed() }; n];
        // SAFETY: As above.
        let mut msgs: Vec<libc::mmsghdr> = vec![unsafe { zeroed() }; n];
        for i in 0..n {
            msgs[i].msg_hdr.msg_iov = &mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = (&mut names[i] as *mut libc::sockaddr_ll).cast();
            msgs[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_ll>() as u32;
        }
        // SAFETY: Every message points at live buffers and names of the
        // stated sizes, which outlive the call.
        let got = check(unsafe {
            libc::recvmmsg(self.fd.as_raw_fd(), msgs.as_mut_ptr(), n as u32, flags, std::ptr::null_mut())
        })? as usize;
        for i in 0..got {
            lens[i] = if names[i].sll_pkttype == libc::PACKET_OUTGOING { 0 } else { msgs[i].msg_len as usize };
        }
        Ok(got)
    }

    /// Sends every frame, in batches. Frames the device refuses, frames
    /// too large for the link and frames that meet a down link are lost
    /// (the client retransmits) and reported, so the caller can re-plan or
    /// wait; only an error that says the program is wrong stops sending.
    pub fn send_all<'a>(&self, frames: impl IntoIterator<Item = Frame<'a>>) -> SendReport {
        let mut report = SendReport::default();
        // Every frame's parts; for each frame, where its parts start in
        // `iov` and whether it has a mapped tail.
        let mut iov: Vec<libc::iovec> = Vec::new();
        let mut starts: Vec<(usize, bool)> = Vec::new();
        for f in frames {
            starts.push((iov.len(), f.tail.is_some()));
            iov.push(libc::iovec { iov_base: f.head.as_ptr() as *mut _, iov_len: f.head.len() });
            if let Some(t) = f.tail {
                iov.push(libc::iovec { iov_base: t.as_ptr() as *mut _, iov_len: t.len() });
            }
        }
        let total = starts.len();
        // SAFETY: All-zero is a valid mmsghdr.
        let mut msgs: Vec<libc::mmsghdr> = vec![unsafe { zeroed() }; total];
        for (m, &(start, mapped)) in msgs.iter_mut().zip(&starts) {
            // In bounds: `start` indexes a part pushed above.
            m.msg_hdr.msg_iov = iov[start..].as_mut_ptr();
            m.msg_hdr.msg_iovlen = 1 + usize::from(mapped);
        }
        let mut done = 0;
        while done < total {
            let n = (total - done).min(SEND_BATCH);
            // SAFETY: The messages point at live frame parts (buffers, and
            // spans of mappings the caller keeps mapped) that outlive the
            // call; the socket is bound, so no address is needed.
            let rc = unsafe { libc::sendmmsg(self.fd.as_raw_fd(), msgs[done..].as_mut_ptr(), n as u32, 0) };
            if rc >= 0 {
                done += rc as usize;
                continue;
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            if e.raw_os_error() == Some(libc::EFAULT) && starts[done].1 {
                // The kernel could not read the frame's mapped payload.
                report.unreadable += 1;
                done += 1;
                continue;
            }
            match classify(&e) {
                Recovery::Retry | Recovery::DropFrame => report.dropped += 1,
                Recovery::Replan => report.too_big += 1,
                recovery => {
                    // Nothing more will go out now: the rest is lost.
                    report.dropped += total - done;
                    match recovery {
                        Recovery::LinkDown => report.link_down = true,
                        Recovery::Reopen => report.gone = true,
                        _ => report.fatal = Some(e),
                    }
                    return report;
                }
            }
            done += 1;
        }
        report
    }
}
