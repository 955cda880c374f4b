//! What can go wrong, one variant per cause an application acts on
//! differently, and how each maps onto `std::io::ErrorKind` for the
//! `Read`/`Write` traits.

use bqi::registry::{GrantError, Refusal, RegistryError};
use std::io::ErrorKind;
use std::net::SocketAddrV4;

/// An error of the user-level network library.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// No registry answers at the socket.
    #[error("no BQI registry at {0} (is bqi-registry running?)")]
    NoRegistry(String),
    /// The registry says the caller may not have this (a privileged port).
    #[error("not allowed: {0}")]
    NoRights(String),
    /// The port or flow is taken (by an endpoint or a kernel socket).
    #[error("address in use: {0}")]
    InUse(String),
    /// No such interface, or it has no IPv4 address.
    #[error("no usable interface: {0}")]
    NoDevice(String),
    /// The BQI module is not loaded.
    #[error("the BQI device is not there: {0}")]
    NoBqiDevice(String),
    /// The caller's user holds as many endpoints as the registry allows.
    #[error("endpoint limit reached: {0}")]
    Limit(String),
    /// The registry refused for another reason.
    #[error("the registry refused: {0}")]
    Refused(String),
    /// The peer's link-layer address could not be found.
    #[error("no route to {0}: its link-layer address is unknown")]
    NoNeighbour(SocketAddrV4),
    /// The peer refused the connection (a reset answered the SYN).
    #[error("connection to {0} refused")]
    ConnectionRefused(SocketAddrV4),
    /// The peer reset the connection.
    #[error("connection with {0} reset by the peer")]
    ConnectionReset(SocketAddrV4),
    /// The peer stopped answering (retransmissions or the connect timed
    /// out).
    #[error("connection with {0} timed out")]
    TimedOut(SocketAddrV4),
    /// A blocking call reached its timeout (`set_read_timeout` and kin).
    #[error("operation timed out")]
    WouldTimeOut,
    /// The operation would block on a non-blocking socket.
    #[error("operation would block")]
    WouldBlock,
    /// The endpoint has ended: its net device went away or the module was
    /// unloaded.
    #[error("the endpoint is gone (its device was removed)")]
    EndpointGone,
    /// The socket was shut down for this direction, or never connected.
    #[error("not connected")]
    NotConnected,
    /// A datagram larger than the endpoint can carry.
    #[error("datagram of {0} bytes is too large (at most {1})")]
    TooLarge(usize, usize),
    /// The endpoint or the system failed.
    #[error("{0}")]
    Endpoint(#[from] bqi::Error),
    /// Talking to the registry failed.
    #[error("talking to the registry: {0}")]
    Registry(String),
}

impl NetError {
    /// The `std::io` kind an application using `std::net` would see.
    pub fn kind(&self) -> ErrorKind {
        match self {
            NetError::NoRegistry(_) | NetError::NoBqiDevice(_) => ErrorKind::NotFound,
            NetError::NoRights(_) => ErrorKind::PermissionDenied,
            NetError::InUse(_) => ErrorKind::AddrInUse,
            NetError::Limit(_) => ErrorKind::QuotaExceeded,
            NetError::NoDevice(_) => ErrorKind::AddrNotAvailable,
            NetError::NoNeighbour(_) => ErrorKind::HostUnreachable,
            NetError::ConnectionRefused(_) => ErrorKind::ConnectionRefused,
            NetError::ConnectionReset(_) => ErrorKind::ConnectionReset,
            NetError::TimedOut(_) | NetError::WouldTimeOut => ErrorKind::TimedOut,
            NetError::WouldBlock => ErrorKind::WouldBlock,
            NetError::EndpointGone => ErrorKind::NetworkDown,
            NetError::NotConnected => ErrorKind::NotConnected,
            NetError::TooLarge(..) => ErrorKind::InvalidInput,
            NetError::Refused(_) | NetError::Endpoint(_) | NetError::Registry(_) => ErrorKind::Other,
        }
    }
}

impl From<NetError> for std::io::Error {
    fn from(e: NetError) -> Self {
        std::io::Error::new(e.kind(), e)
    }
}

impl From<GrantError> for NetError {
    fn from(e: GrantError) -> Self {
        match e {
            GrantError::Registry(r) => r.into(),
            GrantError::Endpoint(bqi::Error::Ended) => NetError::EndpointGone,
            GrantError::Endpoint(e) => NetError::Endpoint(e),
        }
    }
}

impl From<RegistryError> for NetError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::NoRegistry(at) => NetError::NoRegistry(at),
            RegistryError::Refused(why, message) => match why {
                Refusal::NoRights => NetError::NoRights(message),
                Refusal::InUse => NetError::InUse(message),
                Refusal::NoDevice => NetError::NoDevice(message),
                Refusal::NoBqiDevice => NetError::NoBqiDevice(message),
                Refusal::Invalid => NetError::Refused(message),
                Refusal::Limit => NetError::Limit(message),
            },
            RegistryError::Io(e) => NetError::Registry(e.to_string()),
            RegistryError::Protocol(m) => NetError::Registry(m),
        }
    }
}

/// This library's result.
pub type Result<T, E = NetError> = std::result::Result<T, E>;
