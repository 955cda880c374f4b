//! bqi-registry: the only holder of the right to configure BQI endpoints.
//!
//! Applications connect over a Unix socket and ask for an endpoint (a raw
//! one by buffer queue index; UDP bound to a port; TCP connected or
//! listening). The registry checks the request and the caller's rights,
//! reserves the port in the kernel too (it binds a kernel socket to it, so
//! the stack cannot hand the port out while the endpoint has it), configures
//! the endpoint and passes its file with `SCM_RIGHTS`. It keeps a
//! duplicate of every file it granted; when the application's connection
//! closes (it exited, or was killed) the registry closes its duplicate, so
//! the endpoint goes as soon as the application's own copy is gone, and
//! holds the port for the protocol's quiet time before releasing it.
//!
//! `bqi-registry serve` runs in the foreground (logs on stderr, `ready` on
//! stdout once listening, stops on SIGTERM or SIGINT, as a systemd service
//! of type `exec` expects); `bqi-registry status [--json]` asks a running
//! one what it holds.

mod exchange;
mod reset;

use anyhow::{bail, Context, Result};
use bqi::registry::{self, Answer, Ask, Refusal, StatusEntry};
use clap::{Parser, Subcommand};
use polynic_abi::bqi::{EndpointConfig, EndpointKind};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddrV4, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "The BQI registry: configures endpoints for applications")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve in the foreground.
    Serve {
        /// Unix socket to listen on.
        #[arg(long, default_value = registry::DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Seconds a port stays reserved after its application left (TCP's
        /// TIME-WAIT is 60 s on Linux).
        #[arg(long, default_value_t = 60)]
        quiet_time: u64,
        /// The BQI device node.
        #[arg(long, default_value = bqi::DEVICE)]
        device: PathBuf,
        /// Most endpoints one user may hold at once (their memory is
        /// charged to the registry, which configures them).
        #[arg(long, default_value_t = 256)]
        max_per_user: usize,
        /// UDP port of the index exchange with peer hosts' registries (0:
        /// no exchange; connections then use plain IPv4).
        #[arg(long, default_value_t = polynic_abi::bqi::EXCHANGE_PORT)]
        exchange_port: u16,
    },
    /// Print what a running registry holds.
    Status {
        #[arg(long, default_value = registry::DEFAULT_SOCKET)]
        socket: PathBuf,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
}

/// A kernel socket holding a port for an endpoint (kept open, never read).
enum Reservation {
    Udp(#[allow(dead_code)] UdpSocket),
    Tcp(#[allow(dead_code)] OwnedFd),
    None,
}

/// An endpoint the registry granted, or a port it holds after.
struct Held {
    conn: u64,
    pid: i32,
    /// The application's user.
    uid: u32,
    kind: &'static str,
    dev: String,
    bqi: u16,
    /// The peer endpoint's index, learned by the exchange (0: none).
    peer_bqi: u16,
    local: Option<SocketAddrV4>,
    remote: Option<SocketAddrV4>,
    /// Clients of a listening TCP endpoint, as the application reported
    /// them: reset with the rest if it dies.
    accepted: Vec<SocketAddrV4>,
    /// The registry's duplicate of the endpoint's file (None once the
    /// application left).
    file: Option<OwnedFd>,
    _reservation: Reservation,
    /// When the quiet time ends, once the application left.
    quiet_until: Option<Instant>,
}

struct State {
    held: Vec<Held>,
    quiet_time: Duration,
    device: PathBuf,
    next_conn: u64,
    /// Most endpoints one user may hold.
    max_per_user: usize,
    /// The index exchange's port (0: off) and what it answered.
    exchange_port: u16,
    exchange: Arc<exchange::Tally>,
}

impl State {
    /// Drops reservations whose quiet time is over.
    fn expire(&mut self) {
        let now = Instant::now();
        self.held.retain(|h| h.quiet_until.is_none_or(|t| t > now));
    }

    /// The index of the endpoint whose remote is open serving `server`
    /// for `kind` (0: none): what the index exchange answers.
    fn serving(&self, kind: &str, server: SocketAddrV4) -> u16 {
        self.held
            .iter()
            .find(|h| {
                h.file.is_some()
                    && h.kind == kind
                    && h.remote.is_none()
                    && h.local.is_some_and(|l| l.port() == server.port() && (l.ip() == server.ip() || l.ip().is_unspecified()))
            })
            .map_or(0, |h| h.bqi)
    }

    /// Whether a reserved or granted flow uses `local` for `kind`.
    fn port_held(&self, kind: &str, local: SocketAddrV4) -> bool {
        self.held.iter().any(|h| {
            h.kind == kind && h.local.is_some_and(|l| l.port() == local.port() && (l.ip() == local.ip() || l.ip().is_unspecified()))
        })
    }
}

fn refuse(why: Refusal, message: impl Into<String>) -> Answer {
    Answer::Refused { why, message: message.into() }
}

/// The peer's credentials (`SO_PEERCRED`).
fn peer_cred(stream: &UnixStream) -> Result<libc::ucred> {
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is writable for `len` bytes.
    let rc = unsafe {
        libc::getsockopt(stream.as_raw_fd(), libc::SOL_SOCKET, libc::SO_PEERCRED, (&raw mut cred).cast(), &mut len)
    };
    if rc != 0 {
        bail!("SO_PEERCRED: {}", std::io::Error::last_os_error());
    }
    Ok(cred)
}

/// Reserves `local` in the kernel for `kind`; returns the reservation and
/// the address actually bound (port 0 picks one).
fn reserve(kind: &str, local: SocketAddrV4) -> std::io::Result<(Reservation, SocketAddrV4)> {
    let bound = |a: std::net::SocketAddr| match a {
        std::net::SocketAddr::V4(v4) => v4,
        std::net::SocketAddr::V6(_) => local,
    };
    match kind {
        "udp" => {
            let s = UdpSocket::bind(local)?;
            let a = bound(s.local_addr()?);
            Ok((Reservation::Udp(s), a))
        }
        _ => {
            // Bound, not listening: the port is taken for the stack, which
            // answers nothing on it (the demux takes the flow's frames).
            let (fd, a) = bind_tcp(local)?;
            Ok((Reservation::Tcp(fd), a))
        }
    }
}

/// A TCP socket bound to `local` without listening.
fn bind_tcp(local: SocketAddrV4) -> std::io::Result<(OwnedFd, SocketAddrV4)> {
    use std::os::fd::FromRawFd;
    // SAFETY: Plain socket creation; the descriptor is owned below.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: A new descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: All-zero bytes are a valid sockaddr_in.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_port = local.port().to_be();
    sa.sin_addr = libc::in_addr { s_addr: u32::from_ne_bytes(local.ip().octets()) };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `sa` is a valid sockaddr_in of `len` bytes.
    if unsafe { libc::bind(fd.as_raw_fd(), (&raw const sa).cast(), len) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: As above.
    let mut out: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut out_len = len;
    // SAFETY: `out` is writable for `out_len` bytes.
    if unsafe { libc::getsockname(fd.as_raw_fd(), (&raw mut out).cast(), &mut out_len) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let port = u16::from_be(out.sin_port);
    Ok((fd, SocketAddrV4::new(*local.ip(), port)))
}

/// Handles one request; returns the answer and the file to pass.
fn grant(state: &Mutex<State>, conn: u64, cred: &libc::ucred, ask: Ask) -> (Answer, Option<OwnedFd>) {
    if let Ask::Neighbour { dev, src, ip } = &ask {
        // Resolving may take a while: the state is not locked meanwhile.
        return match bqi::neigh::resolve(dev, *src, *ip, Duration::from_millis(1500)) {
            Ok(mac) => (Answer::Neighbour { mac }, None),
            Err(e) => (refuse(Refusal::NoDevice, e.to_string()), None),
        };
    }
    let mut st = match state.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    st.expire();
    let (kind, dev, bqi_index, peer, local, remote, buffers) = match ask {
        Ask::Status => {
            let now = Instant::now();
            let entries = st
                .held
                .iter()
                .map(|h| StatusEntry {
                    state: if h.file.is_some() { "endpoint" } else { "quiet" }.into(),
                    pid: h.pid,
                    kind: h.kind.into(),
                    dev: h.dev.clone(),
                    bqi: h.bqi,
                    peer_bqi: h.peer_bqi,
                    local: h.local,
                    remote: h.remote,
                    quiet_s: h.quiet_until.map(|t| t.saturating_duration_since(now).as_secs()),
                })
                .collect();
            let exchange = registry::ExchangeStatus {
                port: st.exchange_port,
                answered: st.exchange.answered.load(std::sync::atomic::Ordering::Relaxed),
                malformed: st.exchange.malformed.load(std::sync::atomic::Ordering::Relaxed),
            };
            return (Answer::Status { entries, exchange }, None);
        }
        Ask::Accepted { bqi, remote } => {
            let Some(h) = st.held.iter_mut().find(|h| h.conn == conn && h.kind == "tcp" && h.bqi == bqi && h.file.is_some())
            else {
                return (refuse(Refusal::Invalid, format!("no listening TCP endpoint {bqi} of this application")), None);
            };
            h.accepted.retain(|r| *r != remote);
            h.accepted.push(remote);
            return (Answer::Noted, None);
        }
        // Answered above.
        Ask::Neighbour { .. } => return (refuse(Refusal::Invalid, "neighbour"), None),
        Ask::Raw { dev, bqi, peer, buffers } => ("raw", dev, bqi, peer, None, None, buffers),
        Ask::Udp { dev, local, remote, buffers } => ("udp", dev, 0, 0, Some(local), remote, buffers),
        Ask::Tcp { dev, local, remote, buffers } => ("tcp", dev, 0, 0, Some(local), remote, buffers),
    };
    // A user's endpoints cost the registry's memory (it configures them), so
    // each user gets a bounded share. (Requests of one user served at once
    // by different connections may each pass this check while the index
    // exchange runs unlocked: the bound holds within that many.)
    let holding = st.held.iter().filter(|h| h.file.is_some() && h.uid == cred.uid).count();
    if holding >= st.max_per_user {
        return (refuse(Refusal::Limit, format!("user {} holds {holding} endpoints, the most allowed", cred.uid)), None);
    }
    let Ok(index) = bqi::iface::index(&dev) else {
        return (refuse(Refusal::NoDevice, format!("no interface {dev}")), None);
    };
    let mut reservation = Reservation::None;
    let mut local = local;
    if let Some(l) = local {
        if l.port() != 0 && l.port() < 1024 && cred.uid != 0 {
            return (refuse(Refusal::NoRights, format!("port {} needs root", l.port())), None);
        }
        if l.port() != 0 && st.port_held(kind, l) {
            return (refuse(Refusal::InUse, format!("{kind} port {} is taken", l.port())), None);
        }
        match reserve(kind, l) {
            Ok((r, bound)) => {
                reservation = r;
                local = Some(bound);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                return (refuse(Refusal::InUse, format!("{kind} port {} is taken by a kernel socket", l.port())), None)
            }
            Err(e) => return (refuse(Refusal::Invalid, format!("reserving {l}: {e}")), None),
        }
    }
    // Where the peer speaks BQI, its registry names the index serving this
    // flow there (seed 003 §3.4). Asked without the state locked: the
    // peer's registry may be asking this one at the same time.
    let mut peer = peer;
    if let (Some(l), Some(r), "udp" | "tcp", port @ 1..) = (local, remote, kind, st.exchange_port) {
        drop(st);
        let proto = if kind == "tcp" { polynic_abi::bqi::IPPROTO_TCP } else { polynic_abi::bqi::IPPROTO_UDP };
        peer = exchange::ask(proto, l, r, port).unwrap_or(0);
        st = match state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
    }
    let mut config = bqi::endpoint_config(
        match kind {
            "raw" => EndpointKind::Raw,
            "udp" => EndpointKind::Udp,
            _ => EndpointKind::Tcp,
        },
        index,
    );
    config.bqi = bqi_index;
    config.peer_bqi = peer;
    config.buf_count = buffers;
    // Room in each queue for a request or an event per buffer: a burst
    // that fills the receive pool leaves room for its refills and sends.
    let entries = buffers.clamp(polynic_abi::bqi::MIN_ENTRIES, polynic_abi::bqi::MAX_ENTRIES).next_power_of_two();
    config.req_entries = entries.max(config.req_entries);
    config.evt_entries = entries.max(config.evt_entries);
    if let Some(l) = local {
        config.local_ip = l.ip().octets();
        config.local_port = l.port();
    }
    if let Some(r) = remote {
        config.remote_ip = r.ip().octets();
        config.remote_port = r.port();
    }
    let (file, granted) = match configure(&st.device, &config) {
        Ok(x) => x,
        Err(e) => {
            let why = match &e {
                bqi::Error::InUse => Refusal::InUse,
                bqi::Error::NoDevice(_) => Refusal::NoBqiDevice,
                bqi::Error::Ended => Refusal::NoDevice,
                _ => Refusal::Invalid,
            };
            return (refuse(why, e.to_string()), None);
        }
    };
    let dup = match file.try_clone() {
        Ok(d) => d,
        Err(e) => return (refuse(Refusal::Invalid, format!("dup: {e}")), None),
    };
    let via = if peer != 0 { format!(", peer index {peer}") } else { String::new() };
    eprintln!("bqi-registry: pid {} granted {kind} endpoint {granted} on {dev} ({local:?} -> {remote:?}{via})", cred.pid);
    st.held.push(Held {
        conn,
        pid: cred.pid,
        uid: cred.uid,
        kind,
        dev,
        bqi: granted,
        peer_bqi: peer,
        local,
        remote,
        accepted: Vec::new(),
        file: Some(dup),
        _reservation: reservation,
        quiet_until: None,
    });
    (Answer::Granted { bqi: granted, local }, Some(file))
}

/// Opens and configures an endpoint; returns its file and index.
fn configure(device: &PathBuf, config: &EndpointConfig) -> bqi::Result<(OwnedFd, u16)> {
    let fd = bqi::open(device)?;
    bqi::configure(fd.as_fd(), config)?;
    let mut raw = [0u8; polynic_abi::bqi::INFO_LEN];
    // SAFETY: `raw` is writable for the size the command encodes.
    if unsafe { libc::ioctl(fd.as_raw_fd(), polynic_abi::bqi::IOC_INFO as _, raw.as_mut_ptr()) } != 0 {
        return Err(bqi::Error::Os("info", std::io::Error::last_os_error()));
    }
    let info = polynic_abi::bqi::Info::from_bytes(&raw).ok_or(bqi::Error::BadConfig("info".into()))?;
    Ok((fd, info.bqi))
}

/// Serves one application until its connection closes, then reclaims.
fn serve_client(state: Arc<Mutex<State>>, stream: UnixStream, conn: u64) {
    let cred = match peer_cred(&stream) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bqi-registry: {e}");
            return;
        }
    };
    let Ok(read_half) = stream.try_clone() else { return };
    for line in BufReader::new(read_half).lines() {
        let Ok(line) = line else { break };
        let (answer, fd) = match serde_json::from_str::<Ask>(&line) {
            Ok(ask) => grant(&state, conn, &cred, ask),
            Err(e) => (refuse(Refusal::Invalid, format!("malformed request: {e}")), None),
        };
        let mut text = serde_json::to_string(&answer).unwrap_or_else(|_| "{}".into());
        text.push('\n');
        let raw = fd.as_ref().map(|f| f.as_raw_fd());
        if let Err(e) = registry::send_with_fd(stream.as_raw_fd(), text.as_bytes(), raw) {
            eprintln!("bqi-registry: answering pid {}: {e}", cred.pid);
            break;
        }
        // Our copy of the passed file goes now; the registry keeps its dup.
        drop(fd);
    }
    // The application is gone: its endpoints go, their ports stay held.
    let mut st = match state.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    let until = Instant::now() + st.quiet_time;
    let mut reclaimed = 0;
    let mut to_reset = Vec::new();
    for h in st.held.iter_mut().filter(|h| h.conn == conn && h.file.is_some()) {
        h.file = None;
        h.pid = 0;
        h.quiet_until = Some(until);
        reclaimed += 1;
        if let (Some(local), "tcp") = (h.local, h.kind) {
            let peers: Vec<_> = h.remote.into_iter().chain(std::mem::take(&mut h.accepted)).collect();
            if !peers.is_empty() {
                to_reset.push((local, peers));
            }
        }
    }
    drop(st);
    if reclaimed > 0 {
        let quiet = match state.lock() {
            Ok(g) => g.quiet_time.as_secs(),
            Err(p) => p.into_inner().quiet_time.as_secs(),
        };
        eprintln!("bqi-registry: pid {} left; reclaimed {reclaimed} endpoint(s), ports held {quiet} s", cred.pid);
    }
    // The endpoints are gone with the application's files (its own copies
    // closed when it exited): its TCP peers are reset through the kernel.
    for (local, peers) in to_reset {
        let probes = reset::reset_peers(local, &peers);
        eprintln!("bqi-registry: reset {} connection(s) of {local} ({probes} probes)", peers.len());
    }
}

/// Starts answering the index exchange on `port` (0: not at all).
fn start_exchange(state: &Arc<Mutex<State>>, port: u16) {
    if port == 0 {
        return;
    }
    let socket = match UdpSocket::bind(SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, port)) {
        Ok(s) => s,
        Err(e) => {
            // Connections still work, as plain IPv4.
            eprintln!("bqi-registry: no index exchange (UDP port {port}: {e})");
            return;
        }
    };
    let state = state.clone();
    std::thread::spawn(move || {
        let tally = match state.lock() {
            Ok(g) => g.exchange.clone(),
            Err(p) => p.into_inner().exchange.clone(),
        };
        exchange::answer(socket, &tally, |q| {
            let st = match state.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            let kind = if q.proto == polynic_abi::bqi::IPPROTO_TCP { "tcp" } else { "udp" };
            st.serving(kind, SocketAddrV4::new(q.server.0.into(), q.server.1))
        });
    });
}

fn serve(socket: PathBuf, quiet_time: u64, device: PathBuf, max_per_user: usize, exchange_port: u16) -> Result<()> {
    if socket.exists() {
        // A stale socket from a registry that died; a live one answers.
        if UnixStream::connect(&socket).is_ok() {
            bail!("a registry already listens at {}", socket.display());
        }
        std::fs::remove_file(&socket).with_context(|| format!("removing stale {}", socket.display()))?;
    }
    let listener = UnixListener::bind(&socket).with_context(|| format!("binding {}", socket.display()))?;
    // Any local application may ask; the registry decides.
    std::fs::set_permissions(&socket, std::os::unix::fs::PermissionsExt::from_mode(0o666))?;
    let state = Arc::new(Mutex::new(State {
        held: Vec::new(),
        quiet_time: Duration::from_secs(quiet_time),
        device,
        next_conn: 0,
        max_per_user,
        exchange_port,
        exchange: Default::default(),
    }));
    start_exchange(&state, exchange_port);
    println!("ready");
    eprintln!("bqi-registry: listening on {}", socket.display());
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                eprintln!("bqi-registry: accept: {e}");
                continue;
            }
        };
        let conn = {
            let mut st = match state.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            st.next_conn += 1;
            st.next_conn
        };
        let state = state.clone();
        std::thread::spawn(move || serve_client(state, stream, conn));
    }
    Ok(())
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Serve { socket, quiet_time, device, max_per_user, exchange_port } => {
            serve(socket, quiet_time, device, max_per_user, exchange_port)
        }
        Command::Status { socket, json } => {
            let mut r = registry::Registry::connect(&socket)?;
            let (answer, _) = r.ask(&Ask::Status)?;
            let Answer::Status { entries, exchange } = answer else { bail!("unexpected answer {answer:?}") };
            if json {
                /// The JSON status, fields in this order.
                #[derive(serde::Serialize)]
                struct Status {
                    entries: Vec<StatusEntry>,
                    exchange: registry::ExchangeStatus,
                }
                println!("{}", serde_json::to_string(&Status { entries, exchange })?);
            } else {
                match exchange.port {
                    0 => println!("index exchange off"),
                    p => println!(
                        "index exchange on UDP port {p}: {} queries answered, {} malformed datagrams ignored",
                        exchange.answered, exchange.malformed
                    ),
                }
                for e in entries {
                    let local = e.local.map(|l| l.to_string()).unwrap_or_else(|| "-".into());
                    let remote = e.remote.map(|l| l.to_string()).unwrap_or_else(|| "*".into());
                    let quiet = e.quiet_s.map(|s| format!(" (quiet {s} s)")).unwrap_or_default();
                    let peer = if e.peer_bqi != 0 { format!(" (peer bqi {})", e.peer_bqi) } else { String::new() };
                    println!(
                        "{:8} {:3} {:6} bqi {:4} {local} -> {remote}{peer} pid {}{quiet}",
                        e.state, e.kind, e.dev, e.bqi, e.pid
                    );
                }
            }
            Ok(())
        }
    }
}
