//! UDP shaped like `std::net::UdpSocket`: bound to a port of the device's
//! address, sending to and receiving from anyone.

use crate::error::{NetError, Result};
use crate::stack::{block_on, lock, Shared, Stack, Want};
use crate::Config;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::udp;
use smoltcp::wire::{IpAddress, IpEndpoint};
use std::net::SocketAddrV4;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

/// Datagrams each way the socket's buffers hold.
const DATAGRAMS: usize = 64;

/// A UDP socket.
pub struct UdpSocket {
    stack: Shared,
    handle: SocketHandle,
    local: SocketAddrV4,
    nonblocking: bool,
    read_timeout: Option<Duration>,
    /// Largest datagram payload.
    max_payload: usize,
}

impl UdpSocket {
    /// Binds `port` of `cfg.dev`'s address (0: a port the registry picks).
    pub fn bind(cfg: &Config, port: u16) -> Result<UdpSocket> {
        let stack = Stack::open(cfg, port, Want::Udp)?;
        let (handle, local, max_payload) = {
            let mut s = lock(&stack);
            let local = s.local;
            let max_payload = s.device.mtu().saturating_sub(28);
            let room = DATAGRAMS * max_payload.max(1);
            let buffer = || udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; DATAGRAMS], vec![0; room]);
            let mut sock = udp::Socket::new(buffer(), buffer());
            sock.bind(local.port()).map_err(|e| NetError::Refused(format!("bind: {e}")))?;
            (s.sockets.add(sock), local, max_payload)
        };
        Ok(UdpSocket { stack, handle, local, nonblocking: false, read_timeout: None, max_payload })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddrV4 {
        self.local
    }

    /// Non-blocking mode.
    pub fn set_nonblocking(&mut self, on: bool) {
        self.nonblocking = on;
    }

    /// Bounds how long a receive waits (`None`: for ever).
    pub fn set_read_timeout(&mut self, t: Option<Duration>) {
        self.read_timeout = t;
    }

    /// Sends `buf` as one datagram to `to` (whose link-layer address the
    /// registry finds the first time).
    pub fn send_to(&self, buf: &[u8], to: SocketAddrV4) -> Result<usize> {
        if buf.len() > self.max_payload {
            return Err(NetError::TooLarge(buf.len(), self.max_payload));
        }
        {
            let mut s = lock(&self.stack);
            if !s.device.knows(*to.ip()) {
                s.resolve(*to.ip())?;
            }
        }
        let h = self.handle;
        let dest = IpEndpoint::new(IpAddress::Ipv4(*to.ip()), to.port());
        block_on(&self.stack, self.nonblocking, None, |s| {
            let sock = s.sockets.get_mut::<udp::Socket>(h);
            if !sock.can_send() {
                return None;
            }
            Some(sock.send_slice(buf, dest).map(|()| buf.len()).map_err(|e| NetError::Refused(format!("send: {e}"))))
        })
    }

    /// Receives one datagram into `buf` (the rest of a longer one is
    /// lost, as with `std`); returns its length and sender.
    pub fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddrV4)> {
        let h = self.handle;
        block_on(&self.stack, self.nonblocking, self.read_timeout, |s| {
            let sock = s.sockets.get_mut::<udp::Socket>(h);
            if !sock.can_recv() {
                return None;
            }
            Some(match sock.recv() {
                Ok((data, meta)) => {
                    let n = data.len().min(buf.len());
                    buf[..n].copy_from_slice(&data[..n]);
                    let IpAddress::Ipv4(ip) = meta.endpoint.addr;
                    Ok((n, SocketAddrV4::new(ip, meta.endpoint.port)))
                }
                Err(e) => Err(NetError::Refused(format!("receive: {e}"))),
            })
        })
        .map_err(|e| if matches!(e, NetError::WouldTimeOut) { NetError::WouldTimeOut } else { e })
    }
}

impl UdpSocket {
    /// What the endpoint's adapter counted (shared by every socket on the
    /// endpoint).
    pub fn device_counters(&self) -> crate::DeviceCounters {
        lock(&self.stack).device.counters()
    }
}

impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        lock(&self.stack).fd()
    }
}
