//! TCP shaped like `std::net`: [`TcpStream`] (connect, read, write,
//! shutdown) and [`TcpListener`] (bind, accept). A connected stream has an
//! endpoint of its own (its flow); a listener's endpoint takes every flow
//! to its port, and the streams it accepts share it.

use crate::error::{NetError, Result};
use crate::stack::{block_on, lock, Shared, Stack, Want};
use crate::Config;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{self, State};
use smoltcp::wire::{IpAddress, IpEndpoint};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddrV4};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

/// How long `connect` waits for the handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

fn v4(ep: IpEndpoint) -> Option<SocketAddrV4> {
    let IpAddress::Ipv4(ip) = ep.addr;
    Some(SocketAddrV4::new(ip, ep.port))
}

/// A TCP connection.
pub struct TcpStream {
    stack: Shared,
    handle: SocketHandle,
    local: SocketAddrV4,
    peer: SocketAddrV4,
    nonblocking: bool,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    /// The peer's FIN was seen: reads give end of file, not an error.
    eof: bool,
    read_shut: bool,
}

/// Why a connection that is closed ended.
fn closed_error(s: &mut Stack, peer: SocketAddrV4, established: bool) -> NetError {
    if s.device.take_reset(peer) {
        if established { NetError::ConnectionReset(peer) } else { NetError::ConnectionRefused(peer) }
    } else if s.device.ended() {
        NetError::EndpointGone
    } else {
        NetError::TimedOut(peer)
    }
}

impl TcpStream {
    /// Connects to `remote` through an endpoint on `cfg.dev` (a port the
    /// registry picks).
    pub fn connect(cfg: &Config, remote: SocketAddrV4) -> Result<TcpStream> {
        let stack = Stack::open(cfg, 0, Want::TcpConnect(remote))?;
        let (handle, local) = {
            let mut s = lock(&stack);
            let local = s.local;
            let h = s.new_tcp();
            s.tcp_connect(h, remote)?;
            (h, local)
        };
        let established = block_on(&stack, false, Some(CONNECT_TIMEOUT), |s| {
            match s.sockets.get::<tcp::Socket>(handle).state() {
                State::SynSent | State::SynReceived => None,
                State::Closed => Some(Err(closed_error(s, remote, false))),
                _ => Some(Ok(())),
            }
        });
        match established {
            Ok(()) => Ok(TcpStream::new(stack, handle, local, remote)),
            Err(e) => {
                let e = if matches!(e, NetError::WouldTimeOut) { NetError::TimedOut(remote) } else { e };
                lock(&stack).sockets.get_mut::<tcp::Socket>(handle).abort();
                Err(e)
            }
        }
    }

    fn new(stack: Shared, handle: SocketHandle, local: SocketAddrV4, peer: SocketAddrV4) -> Self {
        TcpStream {
            stack,
            handle,
            local,
            peer,
            nonblocking: false,
            read_timeout: None,
            write_timeout: None,
            eof: false,
            read_shut: false,
        }
    }

    /// This end's address.
    pub fn local_addr(&self) -> SocketAddrV4 {
        self.local
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddrV4 {
        self.peer
    }

    /// Non-blocking mode: calls that would wait give `WouldBlock`; wait
    /// for the file ([`AsRawFd`]) to be readable with `poll` or `epoll`.
    pub fn set_nonblocking(&mut self, on: bool) {
        self.nonblocking = on;
    }

    /// Bounds how long a read waits (`None`: for ever).
    pub fn set_read_timeout(&mut self, t: Option<Duration>) {
        self.read_timeout = t;
    }

    /// Bounds how long a write waits (`None`: for ever).
    pub fn set_write_timeout(&mut self, t: Option<Duration>) {
        self.write_timeout = t;
    }

    /// Reads into `buf`; 0 at the end of the peer's data.
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        if self.read_shut || buf.is_empty() {
            return Ok(0);
        }
        let (h, peer) = (self.handle, self.peer);
        let eof = &mut self.eof;
        block_on(&self.stack, self.nonblocking, self.read_timeout, |s| {
            let sock = s.sockets.get_mut::<tcp::Socket>(h);
            if sock.can_recv() {
                return Some(sock.recv_slice(buf).map_err(|_| NetError::NotConnected));
            }
            match sock.state() {
                State::CloseWait | State::LastAck | State::Closing | State::TimeWait => {
                    *eof = true;
                    Some(Ok(0))
                }
                // Closed after the peer's FIN: its data ended in order (and
                // ours was acknowledged) before this read saw the end.
                State::Closed if *eof || s.fin_received(h) => {
                    *eof = true;
                    Some(Ok(0))
                }
                State::Closed => Some(Err(closed_error(s, peer, true))),
                _ => None,
            }
        })
    }

    /// Writes from `buf`; returns how much the send buffer took.
    pub fn send(&mut self, buf: &[u8]) -> Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let (h, peer) = (self.handle, self.peer);
        block_on(&self.stack, self.nonblocking, self.write_timeout, |s| {
            let sock = s.sockets.get_mut::<tcp::Socket>(h);
            if sock.can_send() {
                return Some(sock.send_slice(buf).map_err(|_| NetError::NotConnected));
            }
            match sock.state() {
                State::Closed => Some(Err(closed_error(s, peer, true))),
                _ if !sock.may_send() => Some(Err(NetError::NotConnected)),
                _ => None,
            }
        })
    }

    /// Waits until everything written has been acknowledged by the peer.
    pub fn drain(&mut self) -> Result<()> {
        let (h, peer) = (self.handle, self.peer);
        block_on(&self.stack, self.nonblocking, self.write_timeout, |s| {
            let sock = s.sockets.get::<tcp::Socket>(h);
            if sock.send_queue() == 0 {
                Some(Ok(()))
            } else if sock.state() == State::Closed {
                Some(Err(closed_error(s, peer, true)))
            } else {
                None
            }
        })
    }

    /// Shuts down reading, writing (a FIN once the data sent so far has
    /// gone) or both.
    pub fn shutdown(&mut self, how: Shutdown) -> Result<()> {
        if matches!(how, Shutdown::Read | Shutdown::Both) {
            self.read_shut = true;
        }
        if matches!(how, Shutdown::Write | Shutdown::Both) {
            let mut s = lock(&self.stack);
            s.sockets.get_mut::<tcp::Socket>(self.handle).close();
            s.poll();
        }
        Ok(())
    }

    /// Resets the connection at once (RST), as `SO_LINGER` 0 does.
    pub fn abort(self) {
        lock(&self.stack).sockets.get_mut::<tcp::Socket>(self.handle).abort();
    }
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        Ok(self.recv(buf)?)
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(self.send(buf)?)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(self.drain()?)
    }
}

impl TcpStream {
    /// What the endpoint's adapter counted (shared by every socket on the
    /// endpoint).
    pub fn device_counters(&self) -> crate::DeviceCounters {
        lock(&self.stack).device.counters()
    }
}

impl AsRawFd for TcpStream {
    /// The endpoint's file: readable when frames or events wait.
    fn as_raw_fd(&self) -> RawFd {
        lock(&self.stack).fd()
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        // Closed in order (FIN) by the stack, which removes it once closed;
        // a stack dropped with it lingers for it.
        lock(&self.stack).orphan(self.handle);
    }
}

/// A listening TCP socket.
pub struct TcpListener {
    stack: Shared,
    local: SocketAddrV4,
    nonblocking: bool,
}

impl TcpListener {
    /// Listens on `port` of `cfg.dev`'s address (0: a port the registry
    /// picks), with `cfg.backlog` handshakes in progress at once.
    pub fn bind(cfg: &Config, port: u16) -> Result<TcpListener> {
        let stack = Stack::open(cfg, port, Want::TcpListen)?;
        let local = {
            let mut s = lock(&stack);
            // The first poll fills the backlog.
            let h = s.new_tcp();
            let port = s.local.port();
            s.sockets.get_mut::<tcp::Socket>(h).listen(port).map_err(|e| NetError::Refused(format!("listen: {e}")))?;
            s.listening.push(h);
            s.poll();
            s.local
        };
        Ok(TcpListener { stack, local, nonblocking: false })
    }

    /// The address listened on.
    pub fn local_addr(&self) -> SocketAddrV4 {
        self.local
    }

    /// Non-blocking mode for `accept`.
    pub fn set_nonblocking(&mut self, on: bool) {
        self.nonblocking = on;
    }

    /// Waits for a connection and returns it with the client's address.
    pub fn accept(&self) -> Result<(TcpStream, SocketAddrV4)> {
        let (handle, peer) = block_on(&self.stack, self.nonblocking, None, |s| {
            let mut i = 0;
            while let Some(&h) = s.accepted.get(i) {
                let sock = s.sockets.get::<tcp::Socket>(h);
                match (sock.state(), sock.remote_endpoint().and_then(v4)) {
                    // A handshake still under way stays queued.
                    (State::SynReceived, _) => i += 1,
                    (State::Closed, _) | (_, None) => {
                        // Reset before it was accepted.
                        s.accepted.remove(i);
                        s.remove_tcp(h);
                    }
                    (_, Some(peer)) => {
                        s.accepted.remove(i);
                        return Some(Ok((h, peer)));
                    }
                }
            }
            None
        })?;
        let mut s = lock(&self.stack);
        // Best effort: the connection works whether or not the registry
        // noted it (it then cannot reset it for a dead application).
        let _ = s.note_accepted(peer);
        drop(s);
        Ok((TcpStream::new(self.stack.clone(), handle, self.local, peer), peer))
    }

    /// Accepted connections, one after another.
    pub fn incoming(&self) -> impl Iterator<Item = Result<TcpStream>> + '_ {
        std::iter::from_fn(move || Some(self.accept().map(|(s, _)| s)))
    }
}

impl TcpListener {
    /// The kernel's counters of the endpoint, by name.
    pub fn endpoint_stats(&self) -> Result<Vec<(&'static str, u64)>> {
        Ok(lock(&self.stack).device.endpoint().stats()?)
    }

    /// What the endpoint's adapter counted (shared by every socket on the
    /// endpoint).
    pub fn device_counters(&self) -> crate::DeviceCounters {
        lock(&self.stack).device.counters()
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        lock(&self.stack).fd()
    }
}
