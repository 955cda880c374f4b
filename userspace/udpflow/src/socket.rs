//! Batched UDP I/O: `sendmmsg` and `recvmmsg` on a std socket, so that a
//! flow costs one system call per batch, not per datagram, which is what
//! lets one sender outrun a router in an emulated guest.

use std::{io, mem, net::UdpSocket, os::fd::AsRawFd, ptr};

/// Hands `bufs` to the kernel on a connected socket; gives how many went.
pub fn send_batch(sock: &UdpSocket, bufs: &[Vec<u8>]) -> io::Result<usize> {
    let mut iovs: Vec<libc::iovec> =
        bufs.iter().map(|b| libc::iovec { iov_base: b.as_ptr() as *mut libc::c_void, iov_len: b.len() }).collect();
    let mut msgs: Vec<libc::mmsghdr> = iovs.iter_mut().map(header).collect();
    // SAFETY: `msgs` has `msgs.len()` entries, each pointing at one iovec of
    // `iovs` and through it at a buffer of `bufs`; all outlive the call, and
    // the kernel only reads them (no name: the socket is connected).
    let r = unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), msgs.len() as u32, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r as usize)
}

/// Receives up to `bufs.len()` datagrams, waiting for the first at most as
/// long as the socket's receive timeout; gives each one's length (a
/// truncated one as `None`). A timeout gives an empty list.
pub fn recv_batch(sock: &UdpSocket, bufs: &mut [Vec<u8>]) -> io::Result<Vec<Option<usize>>> {
    let mut iovs: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iovs.iter_mut().map(header).collect();
    // SAFETY: as in `send_batch`; each iovec covers its whole buffer, which
    // the kernel may fill, and nothing else reads the buffers meanwhile.
    let r = unsafe {
        libc::recvmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), msgs.len() as u32, libc::MSG_WAITFORONE, ptr::null_mut())
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted => Ok(Vec::new()),
            _ => Err(e),
        };
    }
    Ok(msgs[..r as usize]
        .iter()
        .map(|m| (m.msg_hdr.msg_flags & libc::MSG_TRUNC == 0).then_some(m.msg_len as usize))
        .collect())
}

/// Asks for a receive buffer of `bytes`, beyond `rmem_max` if privileged.
pub fn set_receive_buffer(sock: &UdpSocket, bytes: i32) -> io::Result<()> {
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: the option value is a live i32 of the stated size.
        let r = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&bytes as *const i32).cast(),
                mem::size_of::<i32>() as u32,
            )
        };
        if r == 0 {
            return Ok(());
        }
    }
    Err(io::Error::last_os_error())
}

/// A message header with one iovec and no name or control data.
fn header(iov: &mut libc::iovec) -> libc::mmsghdr {
    // SAFETY: all-zero is a valid mmsghdr (null pointers, zero lengths).
    let mut m: libc::mmsghdr = unsafe { mem::zeroed() };
    m.msg_hdr.msg_iov = iov;
    m.msg_hdr.msg_iovlen = 1;
    m
}
