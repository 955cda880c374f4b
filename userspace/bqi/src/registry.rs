//! Talking to `bqi-registry`, the privileged process that configures
//! endpoints: the messages (one JSON object per line over a Unix stream
//! socket) and the passing of an endpoint's file with `SCM_RIGHTS`.
//!
//! An application connects, asks for an endpoint and receives its file; it
//! keeps the connection open for as long as it uses the endpoint, since the
//! registry reclaims everything a connection asked for when it closes (the
//! application exited, or was killed).

use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddrV4;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// Where the registry listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/bqi-registry.sock";

/// What an application asks for.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Ask {
    /// A raw endpoint under the link header, talking to `peer` (an index
    /// on the other host).
    Raw {
        /// Interface name.
        dev: String,
        /// This endpoint's index (0: any).
        bqi: u16,
        /// The peer's index.
        peer: u16,
        /// Packet buffers.
        buffers: u32,
    },
    /// A UDP endpoint bound to `local`, connected to `remote` if given.
    Udp {
        /// Interface name.
        dev: String,
        /// Local address and port (port 0: any free one).
        local: SocketAddrV4,
        /// Remote end, if connected.
        remote: Option<SocketAddrV4>,
        /// Packet buffers.
        buffers: u32,
    },
    /// A TCP endpoint: connected to `remote`, or listening if none.
    Tcp {
        /// Interface name.
        dev: String,
        /// Local address and port (port 0: any free one).
        local: SocketAddrV4,
        /// Remote end; none for a listening endpoint.
        remote: Option<SocketAddrV4>,
        /// Packet buffers.
        buffers: u32,
    },
    /// The link-layer address of `ip`, a neighbour on `dev` (asked from
    /// `src`, this host's address there): a user-level stack cannot resolve
    /// it through an endpoint.
    Neighbour {
        /// Interface name.
        dev: String,
        /// This host's address on it.
        src: std::net::Ipv4Addr,
        /// The neighbour.
        ip: std::net::Ipv4Addr,
    },
    /// A connection the application accepted on its listening TCP endpoint
    /// `bqi`: the registry resets it if the application dies.
    Accepted {
        /// The listening endpoint's index.
        bqi: u16,
        /// The client.
        remote: SocketAddrV4,
    },
    /// The registry's endpoints and reservations.
    Status,
}

/// Why the registry refused.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The caller may not have this (a port below 1024 for a non-root
    /// caller).
    NoRights,
    /// The port, flow or index is in use (by an endpoint or a kernel socket).
    InUse,
    /// No such interface.
    NoDevice,
    /// The request is malformed or the device refused the configuration.
    Invalid,
    /// The BQI device is not there (module not loaded).
    NoBqiDevice,
    /// The caller's user holds as many endpoints as the registry allows
    /// one user (`--max-per-user`).
    Limit,
}

/// The registry's answer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Answer {
    /// Granted; the endpoint's file comes with this message.
    Granted {
        /// The endpoint's buffer queue index.
        bqi: u16,
        /// The local address and port actually reserved.
        local: Option<SocketAddrV4>,
    },
    /// Refused.
    Refused {
        /// Why.
        why: Refusal,
        /// In words.
        message: String,
    },
    /// A neighbour's link-layer address.
    Neighbour {
        /// The address.
        mac: [u8; 6],
    },
    /// Noted.
    Noted,
    /// The status.
    Status {
        /// One line per endpoint or reservation.
        entries: Vec<StatusEntry>,
        /// The index exchange with peer registries.
        #[serde(default)]
        exchange: ExchangeStatus,
    },
}

/// The registry's side of the index exchange.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExchangeStatus {
    /// UDP port it answers on (0: off).
    pub port: u16,
    /// Queries answered (with an index, or 0 for none).
    pub answered: u64,
    /// Datagrams that were not a well-formed query, ignored.
    pub malformed: u64,
}

/// One endpoint or port held by the registry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StatusEntry {
    /// "endpoint", or "quiet" for a port held after its application left.
    pub state: String,
    /// The application's process id (0 once it left).
    pub pid: i32,
    /// raw, udp or tcp.
    pub kind: String,
    /// Interface.
    pub dev: String,
    /// Buffer queue index.
    pub bqi: u16,
    /// The peer endpoint's index, from the index exchange (0: none; the
    /// endpoint sends plain IPv4).
    #[serde(default)]
    pub peer_bqi: u16,
    /// Local address, for UDP and TCP.
    pub local: Option<SocketAddrV4>,
    /// Remote address, if connected.
    pub remote: Option<SocketAddrV4>,
    /// Seconds left of the quiet time, for "quiet".
    pub quiet_s: Option<u64>,
}

/// What went wrong asking the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Nobody listens at the socket.
    #[error("no BQI registry at {0} (is bqi-registry running?)")]
    NoRegistry(String),
    /// The registry refused.
    #[error("the registry refused: {1}")]
    Refused(Refusal, String),
    /// The conversation failed.
    #[error("talking to the registry: {0}")]
    Io(#[from] std::io::Error),
    /// The registry said something this library does not understand.
    #[error("unexpected answer from the registry: {0}")]
    Protocol(String),
}

/// A connection to the registry. Endpoints asked for through it stay
/// granted while it is open.
pub struct Registry {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Registry {
    /// Connects to the registry at `path`.
    pub fn connect(path: impl AsRef<Path>) -> Result<Self, RegistryError> {
        let path = path.as_ref();
        let stream = UnixStream::connect(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                RegistryError::NoRegistry(path.display().to_string())
            }
            _ => RegistryError::Io(e),
        })?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Registry { stream, reader })
    }

    /// Sends `ask`; returns the answer and the file that came with it.
    pub fn ask(&mut self, ask: &Ask) -> Result<(Answer, Option<OwnedFd>), RegistryError> {
        let mut line = serde_json::to_string(ask).map_err(|e| RegistryError::Protocol(e.to_string()))?;
        line.push('\n');
        self.stream.write_all(line.as_bytes())?;
        // The file, if any, comes with the answer's first byte.
        let (first, fd) = recv_with_fd(self.stream.as_raw_fd())?;
        let Some(first) = first else {
            return Err(RegistryError::Protocol("the registry closed the connection".into()));
        };
        let mut rest = String::new();
        self.reader.read_line(&mut rest)?;
        let text = format!("{}{}", first as char, rest);
        let answer: Answer = serde_json::from_str(text.trim()).map_err(|e| RegistryError::Protocol(format!("{e}: {text}")))?;
        if let Answer::Refused { why, message } = &answer {
            return Err(RegistryError::Refused(*why, message.clone()));
        }
        Ok((answer, fd))
    }

    /// Asks for an endpoint and maps it.
    pub fn endpoint(&mut self, ask: &Ask) -> Result<(crate::Endpoint, Answer), GrantError> {
        let (answer, fd) = self.ask(ask)?;
        let fd = fd.ok_or_else(|| RegistryError::Protocol("no file came with the grant".into()))?;
        Ok((crate::Endpoint::map(fd)?, answer))
    }
}

/// Why [`Registry::endpoint`] failed: the registry refused, or the granted
/// endpoint could not be mapped.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// From the registry.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// From the endpoint.
    #[error(transparent)]
    Endpoint(#[from] crate::Error),
}

/// Sends `bytes` on a connected Unix socket, with `fd` attached if given.
pub fn send_with_fd(sock: RawFd, bytes: &[u8], fd: Option<RawFd>) -> std::io::Result<()> {
    // Room for one file descriptor's control message, aligned for cmsghdr.
    let mut control = [0u64; 4];
    // SAFETY: Zeroed is a valid msghdr; the fields set below point at live buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iovlen = 1;
    if let Some(fd) = fd {
        // SAFETY: CMSG_SPACE is a pure computation.
        let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space;
        // SAFETY: `msg` has a control buffer of `space` bytes (<= 32), enough
        // for one header and one descriptor.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), fd);
        }
    }
    let mut sent = 0;
    while sent < bytes.len() {
        let mut iov = libc::iovec { iov_base: bytes[sent..].as_ptr() as *mut _, iov_len: bytes.len() - sent };
        msg.msg_iov = &mut iov;
        if sent > 0 {
            // The file went with the first part.
            msg.msg_control = std::ptr::null_mut();
            msg.msg_controllen = 0;
        }
        // SAFETY: `msg` describes live buffers.
        let n = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        sent += n as usize;
    }
    Ok(())
}

/// Receives one byte from a Unix socket, and the file attached to it if
/// any. `None` for the byte at end of stream.
pub fn recv_with_fd(sock: RawFd) -> std::io::Result<(Option<u8>, Option<OwnedFd>)> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec { iov_base: byte.as_mut_ptr().cast(), iov_len: 1 };
    let mut control = [0u64; 4];
    // SAFETY: Zeroed is a valid msghdr; the fields set below point at live buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    let n = loop {
        // SAFETY: `msg` describes live buffers; CMSG_CLOEXEC keeps the file
        // from leaking into children.
        let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        break n;
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut fd = None;
    // SAFETY: Walking the control messages the kernel wrote into `control`.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let raw = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<RawFd>());
                fd = Some(OwnedFd::from_raw_fd(raw));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok(((n == 1).then_some(byte[0]), fd))
}
