//! Finding the link-layer address of an IPv4 neighbour, for endpoints whose
//! frames a user-level stack writes whole: the kernel's neighbour table
//! first, else an ARP request on the interface (a privileged packet
//! socket, so the registry does it at connection set-up).
//!
//! ARP replies go to the kernel's stack, not to an endpoint (they match no
//! flow), so a user-level stack cannot resolve addresses itself.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// Ethertype of ARP.
const ETH_P_ARP: u16 = 0x0806;
/// Length of an Ethernet ARP frame for IPv4 (without padding).
const ARP_FRAME_LEN: usize = 42;

/// What went wrong resolving a neighbour.
#[derive(Debug, thiserror::Error)]
pub enum NeighError {
    /// Nobody answered.
    #[error("no answer to ARP for {0} on {1}")]
    NoAnswer(Ipv4Addr, String),
    /// The interface is not there.
    #[error(transparent)]
    Iface(#[from] crate::iface::IfaceError),
    /// The packet socket failed.
    #[error("ARP on {0}: {1}")]
    Io(String, std::io::Error),
}

/// The neighbour `ip` as the kernel's table (`/proc/net/arp`) has it on
/// `dev`, if complete.
pub fn from_table(dev: &str, ip: Ipv4Addr) -> Option<[u8; 6]> {
    let table = std::fs::read_to_string("/proc/net/arp").ok()?;
    parse_table(&table, dev, ip)
}

/// Looks `ip` up in the text of `/proc/net/arp`: a complete entry
/// (flags 0x2) on `dev`.
pub fn parse_table(table: &str, dev: &str, ip: Ipv4Addr) -> Option<[u8; 6]> {
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 || f[0].parse::<Ipv4Addr>().ok()? != ip || f[5] != dev {
            return None;
        }
        let flags = u32::from_str_radix(f[2].trim_start_matches("0x"), 16).ok()?;
        if flags & 0x2 == 0 {
            return None;
        }
        crate::iface::parse_mac(f[3]).ok()
    })
}

/// The link-layer address of `ip` on `dev`, asking with `src` as this
/// host's address if the kernel's table does not have it: three requests,
/// `timeout` in all.
pub fn resolve(dev: &str, src: Ipv4Addr, ip: Ipv4Addr, timeout: Duration) -> Result<[u8; 6], NeighError> {
    if let Some(mac) = from_table(dev, ip) {
        return Ok(mac);
    }
    let ifindex = crate::iface::index(dev)?;
    let own = crate::iface::mac(dev)?;
    let io = |e| NeighError::Io(dev.to_string(), e);
    let sock = packet_socket(ifindex).map_err(io)?;
    let request = arp_request(own, src, ip);
    let deadline = Instant::now() + timeout;
    for attempt in 0..3u32 {
        send(&sock, ifindex, &request).map_err(io)?;
        let until = (Instant::now() + timeout / 3).min(deadline);
        if let Some(mac) = wait_reply(&sock, ip, until).map_err(io)? {
            return Ok(mac);
        }
        if attempt == 2 || Instant::now() >= deadline {
            break;
        }
    }
    Err(NeighError::NoAnswer(ip, dev.to_string()))
}

/// An ARP request for `target` from `own`/`src`, broadcast.
pub fn arp_request(own: [u8; 6], src: Ipv4Addr, target: Ipv4Addr) -> [u8; ARP_FRAME_LEN] {
    let mut f = [0u8; ARP_FRAME_LEN];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&own);
    f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
    // Ethernet, IPv4, address lengths 6 and 4, request.
    f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f[22..28].copy_from_slice(&own);
    f[28..32].copy_from_slice(&src.octets());
    f[38..42].copy_from_slice(&target.octets());
    f
}

/// The sender's link-layer address of `frame` if it is an ARP reply from
/// `from`.
pub fn parse_reply(frame: &[u8], from: Ipv4Addr) -> Option<[u8; 6]> {
    let f = frame.get(..ARP_FRAME_LEN)?;
    let is_reply = f[12..14] == ETH_P_ARP.to_be_bytes() && f[14..22] == [0, 1, 8, 0, 6, 4, 0, 2];
    (is_reply && f[28..32] == from.octets()).then(|| f[22..28].try_into().ok()).flatten()
}

fn packet_socket(ifindex: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: Plain socket call; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, i32::from(ETH_P_ARP.to_be())) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: A new descriptor, owned from here.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let addr = link_addr(ifindex);
    // SAFETY: `addr` is a valid sockaddr_ll of the size given.
    let rc = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(sock)
}

fn link_addr(ifindex: u32) -> libc::sockaddr_ll {
    // SAFETY: All-zero is a valid sockaddr_ll.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = ETH_P_ARP.to_be();
    addr.sll_ifindex = ifindex as i32;
    addr
}

fn send(sock: &OwnedFd, ifindex: u32, frame: &[u8]) -> std::io::Result<()> {
    let addr = link_addr(ifindex);
    // SAFETY: `frame` and `addr` are valid for the lengths given.
    let n = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if n < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

fn wait_reply(sock: &OwnedFd, from: Ipv4Addr, until: Instant) -> std::io::Result<Option<[u8; 6]>> {
    let mut buf = [0u8; 128];
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        let mut pfd = libc::pollfd { fd: sock.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: One valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, left.as_millis().clamp(1, i32::MAX as u128) as i32) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if rc == 0 {
            continue;
        }
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if matches!(e.kind(), std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock) {
                continue;
            }
            return Err(e);
        }
        if let Some(mac) = parse_reply(&buf[..n as usize], from) {
            return Ok(Some(mac));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_gives_complete_entries_on_the_device_only() {
        let t = "IP address       HW type     Flags       HW address            Mask     Device\n\
                 10.0.0.2         0x1         0x2         02:00:00:00:00:02     *        veth0\n\
                 10.0.0.3         0x1         0x0         00:00:00:00:00:00     *        veth0\n\
                 10.0.0.4         0x1         0x2         02:00:00:00:00:04     *        eth1\n";
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(parse_table(t, "veth0", ip("10.0.0.2")), Some([2, 0, 0, 0, 0, 2]));
        assert_eq!(parse_table(t, "veth0", ip("10.0.0.3")), None, "incomplete");
        assert_eq!(parse_table(t, "veth0", ip("10.0.0.4")), None, "other device");
        assert_eq!(parse_table(t, "veth0", ip("10.0.0.9")), None);
    }

    #[test]
    fn a_request_is_answered_by_its_reply_only() {
        let own = [2, 0, 0, 0, 0, 1];
        let req = arp_request(own, Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(parse_reply(&req, Ipv4Addr::new(10, 0, 0, 1)), None, "a request is not a reply");
        let mut reply = req;
        reply[21] = 2;
        reply[22..28].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        reply[28..32].copy_from_slice(&[10, 0, 0, 2]);
        assert_eq!(parse_reply(&reply, Ipv4Addr::new(10, 0, 0, 2)), Some([2, 0, 0, 0, 0, 2]));
        assert_eq!(parse_reply(&reply, Ipv4Addr::new(10, 0, 0, 3)), None, "from another address");
        assert_eq!(parse_reply(&reply[..40], Ipv4Addr::new(10, 0, 0, 2)), None, "short");
    }
}
