//! The index exchange between registries (seed 003 §3.4): before the
//! registry configures a connected endpoint it asks the peer host's
//! registry which index serves the flow there, so the endpoint's frames go
//! under the link header straight to the peer endpoint's ring. The peer
//! learns this endpoint's index from those frames. The format is
//! `polynic_abi::bqi::IndexMessage`.
//!
//! Asking never holds a connection up for long: a host with no registry
//! answers with an ICMP refusal at once, and a lost query or answer costs
//! [`TRIES`] × [`WAIT`] before the endpoint is configured without a peer
//! index (plain IPv4, demultiplexed by flow, which works with any peer).

use polynic_abi::bqi::{IndexMessage, EXCHANGE_LEN};
use std::io::{ErrorKind, Read};
use std::net::{SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Queries sent before giving up, and how long each waits for its answer.
pub const TRIES: usize = 2;
pub const WAIT: Duration = Duration::from_millis(150);

/// What the answering side saw, for `status`.
#[derive(Default)]
pub struct Tally {
    /// Queries answered (with an index or with 0).
    pub answered: AtomicU64,
    /// Datagrams that were not a well-formed query: ignored.
    pub malformed: AtomicU64,
}

/// Asks the registry at `server`'s host (on `port`) for the index of the
/// endpoint serving `server` for `client`. `None` if the peer does not
/// speak BQI for this flow (no registry, no such endpoint, or no answer).
pub fn ask(proto: u8, client: SocketAddrV4, server: SocketAddrV4, port: u16) -> Option<u16> {
    let socket = UdpSocket::bind(SocketAddrV4::new(*client.ip(), 0)).ok()?;
    // Connected: only the peer registry's datagrams are read, and an ICMP
    // refusal (no registry there) ends the wait at once.
    socket.connect(SocketAddrV4::new(*server.ip(), port)).ok()?;
    socket.set_read_timeout(Some(WAIT)).ok()?;
    let query = IndexMessage::query(proto, nonce(), (client.ip().octets(), client.port()), (server.ip().octets(), server.port()));
    let mut buf = [0u8; EXCHANGE_LEN + 1];
    for _ in 0..TRIES {
        // Refused (an earlier try's ICMP answer), or no route: no peer.
        socket.send(&query.to_bytes()).ok()?;
        loop {
            match socket.recv(&mut buf) {
                Ok(n) => match IndexMessage::parse(&buf[..n]) {
                    Ok(answer) if query.is_answered_by(&answer) => return (answer.index != 0).then_some(answer.index),
                    // Not our answer (a late one to an earlier try, or
                    // garbage): keep waiting.
                    _ => continue,
                },
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => return None,
                // Timed out: ask again.
                Err(_) => break,
            }
        }
    }
    None
}

/// Answers queries on `socket` until it fails; `index_of` names the index
/// serving a query's server end for its client (0: none).
pub fn answer(socket: UdpSocket, tally: &Tally, index_of: impl Fn(&IndexMessage) -> u16) {
    let mut buf = [0u8; EXCHANGE_LEN + 1];
    loop {
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("bqi-registry: index exchange stopped: {e}");
                return;
            }
        };
        let query = match IndexMessage::parse(&buf[..n]) {
            Ok(q) if q.op == polynic_abi::bqi::ExchangeOp::Query => q,
            _ => {
                tally.malformed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        // Only the client itself may ask about its own flow.
        let from_client = matches!(from, std::net::SocketAddr::V4(a) if a.ip().octets() == query.client.0);
        let index = if from_client { index_of(&query) } else { 0 };
        tally.answered.fetch_add(1, Ordering::Relaxed);
        // A lost answer is asked for again.
        let _ = socket.send_to(&query.answer(index).to_bytes(), from);
    }
}

/// A query's nonce: unpredictable, so an off-path sender cannot answer for
/// the peer.
fn nonce() -> u32 {
    let mut b = [0u8; 4];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).is_err() {
        // Not secret then, but still distinct per query.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        return t.subsec_nanos() ^ std::process::id();
    }
    u32::from_ne_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use polynic_abi::bqi::{IPPROTO_TCP, IPPROTO_UDP};
    use std::net::Ipv4Addr;
    use std::time::Instant;

    const HOST: Ipv4Addr = Ipv4Addr::LOCALHOST;

    /// A registry's answering side on an ephemeral loopback port, serving
    /// TCP port 6000 with index 42.
    fn answering() -> (u16, std::sync::Arc<Tally>) {
        let socket = UdpSocket::bind(SocketAddrV4::new(HOST, 0)).unwrap();
        let port = socket.local_addr().unwrap().port();
        let tally = std::sync::Arc::new(Tally::default());
        let t = tally.clone();
        std::thread::spawn(move || {
            answer(socket, &t, |q| if q.proto == IPPROTO_TCP && q.server.1 == 6000 { 42 } else { 0 })
        });
        (port, tally)
    }

    #[test]
    fn a_query_gets_the_serving_index_or_none() {
        let (port, tally) = answering();
        let client = SocketAddrV4::new(HOST, 40000);
        assert_eq!(ask(IPPROTO_TCP, client, SocketAddrV4::new(HOST, 6000), port), Some(42));
        assert_eq!(ask(IPPROTO_TCP, client, SocketAddrV4::new(HOST, 6001), port), None);
        assert_eq!(ask(IPPROTO_UDP, client, SocketAddrV4::new(HOST, 6000), port), None);
        assert_eq!(tally.answered.load(Ordering::Relaxed), 3);
        // Garbage is counted and ignored; the next query is still answered.
        let s = UdpSocket::bind(SocketAddrV4::new(HOST, 0)).unwrap();
        s.send_to(b"not a query", SocketAddrV4::new(HOST, port)).unwrap();
        s.send_to(&IndexMessage::query(IPPROTO_TCP, 1, ([127, 0, 0, 1], 1), ([127, 0, 0, 1], 6000)).answer(9).to_bytes(), SocketAddrV4::new(HOST, port)).unwrap();
        assert_eq!(ask(IPPROTO_TCP, client, SocketAddrV4::new(HOST, 6000), port), Some(42));
        assert_eq!(tally.malformed.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_query_about_someone_else_gets_no_index() {
        let (port, _) = answering();
        // The query names a client other than its sender.
        let s = UdpSocket::bind(SocketAddrV4::new(HOST, 0)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let q = IndexMessage::query(IPPROTO_TCP, 7, ([10, 9, 9, 9], 40000), ([127, 0, 0, 1], 6000));
        s.send_to(&q.to_bytes(), SocketAddrV4::new(HOST, port)).unwrap();
        let mut b = [0u8; EXCHANGE_LEN];
        let n = s.recv(&mut b).unwrap();
        let a = IndexMessage::parse(&b[..n]).unwrap();
        assert!(q.is_answered_by(&a));
        assert_eq!(a.index, 0);
    }

    #[test]
    fn no_registry_at_the_peer_is_known_at_once() {
        // A port nobody listens on: the ICMP refusal ends the wait.
        let port = UdpSocket::bind(SocketAddrV4::new(HOST, 0)).unwrap().local_addr().unwrap().port();
        let started = Instant::now();
        assert_eq!(ask(IPPROTO_TCP, SocketAddrV4::new(HOST, 40000), SocketAddrV4::new(HOST, 6000), port), None);
        assert!(started.elapsed() < WAIT, "waited {:?}", started.elapsed());
    }
}
