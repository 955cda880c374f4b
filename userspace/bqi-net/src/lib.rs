//! User-level UDP and TCP over polynic BQI endpoints.
//!
//! The protocols run in the application, in this library, with smoltcp as
//! their engine; the kernel only demultiplexes frames into the endpoint's
//! shared rings and checks what it sends against the endpoint's template
//! (seed 003 §3). The registry (`bqi-registry`) is in the connection
//! set-up path only: it grants the endpoint for a port or a flow and finds
//! the peer's link-layer address; the data path is this library and the
//! endpoint alone.
//!
//! The API follows `std::net`: [`TcpStream::connect`], [`TcpListener::bind`]
//! and [`TcpListener::accept`], [`UdpSocket::bind`], `Read`/`Write`,
//! `shutdown`, non-blocking mode with the endpoint's file for `poll` or
//! `epoll` ([`std::os::fd::AsRawFd`]). What differs: every call names the
//! interface through a [`Config`], and peers must be on the interface's
//! subnet (no routing yet).

mod device;
mod error;
mod stack;
mod tcp;
mod udp;

pub use device::DeviceCounters;
pub use error::{NetError, Result};
pub use tcp::{TcpListener, TcpStream};
pub use udp::UdpSocket;

use std::path::PathBuf;

/// Where and how to get endpoints.
#[derive(Clone, Debug)]
pub struct Config {
    /// The registry's socket.
    pub registry: PathBuf,
    /// The interface whose BQI device carries the traffic.
    pub dev: String,
    /// Packet buffers per endpoint.
    pub buffers: u32,
    /// Bytes of each TCP socket's send and receive buffers.
    pub socket_buffer: usize,
    /// Handshakes a listener serves at once (connections beyond them are
    /// refused with a reset until one completes).
    pub backlog: usize,
    /// How long a blocking call spins on the endpoint's event queue (shared
    /// memory, no system call) before it sleeps in `poll`: lower latency
    /// for a CPU. None by default.
    pub busy_poll: Option<std::time::Duration>,
}

impl Config {
    /// Endpoints on `dev` through the registry at its default socket (or
    /// `BQI_REGISTRY` if set).
    pub fn new(dev: impl Into<String>) -> Self {
        let registry = std::env::var_os("BQI_REGISTRY")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(bqi::registry::DEFAULT_SOCKET));
        Config { registry, dev: dev.into(), buffers: 256, socket_buffer: 256 * 1024, backlog: 64, busy_poll: None }
    }
}
