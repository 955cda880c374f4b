//! bqi-probe: drives one BQI endpoint for tests and measurements: echo and
//! ping of raw frames under the link header, UDP receive, forged sends and
//! malformed requests (each must be refused as the ABI says), and holding an
//! endpoint until its device goes. Configures the endpoint itself, so it
//! needs CAP_NET_ADMIN (the registry does this for applications). Prints
//! one JSON object.

use anyhow::{bail, Context, Result};
use bqi::registry::{Ask, Registry};
use bqi::{iface, Endpoint, Next, Received};
use clap::{Args, Parser, Subcommand};
use polynic_abi::bqi::{
    DescError, EndpointConfig, EndpointKind, EventKind, LinkHeader, Reject, Request, ETH_P_BQI,
    ETH_P_IPV4, IPPROTO_UDP, LINK_HEADER_LEN,
};
use serde_json::json;
use std::net::SocketAddrV4;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Drive a BQI endpoint for tests and measurements")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct EndpointArgs {
    /// Network interface the endpoint attaches to.
    #[arg(long)]
    dev: String,
    /// This endpoint's buffer queue index (0: any free one).
    #[arg(long, default_value_t = 0)]
    bqi: u16,
    /// The peer endpoint's index (raw endpoints, or UDP over the link header).
    #[arg(long, default_value_t = 0)]
    peer: u16,
    /// UDP: local address and port.
    #[arg(long)]
    local: Option<SocketAddrV4>,
    /// UDP: remote address and port (none: any).
    #[arg(long)]
    remote: Option<SocketAddrV4>,
    /// Number of packet buffers.
    #[arg(long, default_value_t = 64)]
    buffers: u32,
    /// Ask this registry for the endpoint instead of configuring it (then
    /// no privilege is needed).
    #[arg(long)]
    registry: Option<std::path::PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Configure an endpoint and report the outcome (twice with --twice).
    Configure {
        #[command(flatten)]
        ep: EndpointArgs,
        #[arg(long)]
        twice: bool,
    },
    /// Echo raw frames back to their sender, COUNT of them.
    Echo {
        #[command(flatten)]
        ep: EndpointArgs,
        #[arg(long)]
        count: u32,
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Send COUNT raw frames of SIZE bytes to DST, each awaiting its echo, and
    /// check that each comes back unchanged.
    Ping {
        #[command(flatten)]
        ep: EndpointArgs,
        /// Destination MAC address.
        #[arg(long)]
        dst: String,
        #[arg(long)]
        count: u32,
        #[arg(long, default_value_t = 64)]
        size: usize,
        #[arg(long, default_value_t = 5)]
        timeout: u64,
    },
    /// Receive COUNT UDP datagrams.
    UdpRecv {
        #[command(flatten)]
        ep: EndpointArgs,
        #[arg(long)]
        count: u32,
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Send a valid frame, then one with FIELD forged; the forged one must be
    /// refused for that reason and the valid one sent.
    Forge {
        #[command(flatten)]
        ep: EndpointArgs,
        /// Destination MAC address.
        #[arg(long)]
        dst: String,
        /// src-mac, ethertype, src-bqi, dst-bqi, src-ip, dst-ip, src-port, dst-port, protocol
        #[arg(long)]
        field: String,
    },
    /// Post malformed requests; each must give its error event.
    BadRequests {
        #[command(flatten)]
        ep: EndpointArgs,
    },
    /// Hold an endpoint until its device goes (or SECONDS pass).
    Hold {
        #[command(flatten)]
        ep: EndpointArgs,
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
}

fn config(ep: &EndpointArgs) -> Result<EndpointConfig> {
    let ifindex = iface::index(&ep.dev)?;
    let mut c = bqi::endpoint_config(EndpointKind::Raw, ifindex);
    c.bqi = ep.bqi;
    c.peer_bqi = ep.peer;
    c.buf_count = ep.buffers;
    if let Some(local) = ep.local {
        c.kind = EndpointKind::Udp;
        c.local_ip = local.ip().octets();
        c.local_port = local.port();
        if let Some(r) = ep.remote {
            c.remote_ip = r.ip().octets();
            c.remote_port = r.port();
        }
    }
    Ok(c)
}

/// The registry connection an endpoint was granted through: kept open for
/// the endpoint's life (closing it makes the registry reclaim).
static GRANTED_THROUGH: std::sync::Mutex<Vec<Registry>> = std::sync::Mutex::new(Vec::new());

fn open(ep: &EndpointArgs) -> Result<Endpoint> {
    let Some(path) = &ep.registry else {
        let fd = bqi::open(bqi::DEVICE)?;
        bqi::configure(fd.as_fd(), &config(ep)?)?;
        return Ok(Endpoint::map(fd)?);
    };
    let ask = match ep.local {
        Some(local) => Ask::Udp { dev: ep.dev.clone(), local, remote: ep.remote, buffers: ep.buffers },
        None => Ask::Raw { dev: ep.dev.clone(), bqi: ep.bqi, peer: ep.peer, buffers: ep.buffers },
    };
    let mut registry = Registry::connect(path)?;
    let (endpoint, _) = registry.endpoint(&ask)?;
    GRANTED_THROUGH.lock().map_err(|_| anyhow::anyhow!("lock"))?.push(registry);
    Ok(endpoint)
}

fn stats(e: &Endpoint) -> serde_json::Value {
    let s = e.stats().unwrap_or_default();
    serde_json::Value::Object(s.into_iter().map(|(k, v)| (k.to_string(), json!(v))).collect())
}

fn device_stats(e: &Endpoint) -> serde_json::Value {
    let s = e.device_stats().unwrap_or_default();
    serde_json::Value::Object(s.into_iter().map(|(k, v)| (k.to_string(), json!(v))).collect())
}

/// A raw frame from `e` to `dst` with `payload`.
fn raw_frame(e: &Endpoint, src: [u8; 6], dst: [u8; 6], payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + LINK_HEADER_LEN + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ETH_P_BQI.to_be_bytes());
    let mut h = [0u8; LINK_HEADER_LEN];
    LinkHeader { dst_bqi: e.info().peer_bqi, src_bqi: e.info().bqi, inner: 0x1234 }.encode(&mut h);
    f.extend_from_slice(&h);
    f.extend_from_slice(payload);
    f
}

/// A UDP datagram from the endpoint's local address.
fn udp_frame(src: [u8; 6], dst: [u8; 6], from: SocketAddrV4, to: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ETH_P_IPV4.to_be_bytes());
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = IPPROTO_UDP;
    ip[12..16].copy_from_slice(&from.ip().octets());
    ip[16..20].copy_from_slice(&to.ip().octets());
    let sum = ip.chunks_exact(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum::<u32>();
    let folded = !(((sum & 0xffff) + (sum >> 16)) as u16);
    ip[10..12].copy_from_slice(&folded.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&from.port().to_be_bytes());
    f.extend_from_slice(&to.port().to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]); // no UDP checksum
    f.extend_from_slice(payload);
    f
}

fn wait_frame(e: &mut Endpoint, deadline: Instant) -> Result<Option<Received>> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match e.wait(left)? {
            Some(Next::Frame(r)) => return Ok(Some(r)),
            Some(Next::Ended) => bail!("the endpoint ended"),
            Some(Next::Error(ev)) => bail!("unexpected error event {:?}", ev),
            None if left.is_zero() => return Ok(None),
            None => (),
        }
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let out = match cli.command {
        Command::Configure { ep, twice } => {
            let fd = bqi::open(bqi::DEVICE)?;
            let first = bqi::configure(fd.as_fd(), &config(&ep)?);
            let second = if twice { Some(bqi::configure(fd.as_fd(), &config(&ep)?)) } else { None };
            let text = |r: &bqi::Result<()>| match r {
                Ok(()) => "ok".to_string(),
                Err(e) => e.to_string(),
            };
            json!({"first": text(&first), "second": second.as_ref().map(text)})
        }
        Command::Echo { ep, count, timeout } => {
            let mut e = open(&ep)?;
            let deadline = Instant::now() + Duration::from_secs(timeout);
            let mut echoed = 0u32;
            while echoed < count {
                let Some(r) = wait_frame(&mut e, deadline)? else { break };
                let mut f = e.frame(&r).to_vec();
                e.release(r)?;
                if iface::make_reply(&mut f, true).is_none() {
                    bail!("a {}-byte frame without a valid link header", f.len());
                }
                e.send(&f)?;
                echoed += 1;
            }
            json!({"echoed": echoed, "bqi": e.info().bqi, "stats": stats(&e)})
        }
        Command::Ping { ep, dst, count, size, timeout } => {
            let mut e = open(&ep)?;
            let src = iface::mac(&ep.dev)?;
            let dst = iface::parse_mac(&dst)?;
            // A functional check: every frame comes back unchanged. Round
            // trips are measured by linkbench (`make bench`).
            let (mut received, mut changed) = (0u32, 0u32);
            for i in 0..count {
                let payload: Vec<u8> = (0..size.saturating_sub(14 + LINK_HEADER_LEN))
                    .map(|j| (i as usize + j) as u8)
                    .collect();
                let f = raw_frame(&e, src, dst, &payload);
                e.send(&f)?;
                let Some(r) = wait_frame(&mut e, Instant::now() + Duration::from_secs(timeout))? else { break };
                received += 1;
                let back = e.frame(&r).to_vec();
                e.release(r)?;
                if back.len() < f.len() || back[14 + LINK_HEADER_LEN..f.len()] != payload[..] {
                    changed += 1;
                }
            }
            json!({"sent": count, "received": received, "changed": changed, "stats": stats(&e)})
        }
        Command::UdpRecv { ep, count, timeout } => {
            let local = ep.local.context("--local is needed for UDP")?;
            let mut e = open(&ep)?;
            let deadline = Instant::now() + Duration::from_secs(timeout);
            let (mut received, mut bytes, mut foreign) = (0u32, 0u64, 0u32);
            let mut sum = 0u64;
            while received < count {
                let Some(r) = wait_frame(&mut e, deadline)? else { break };
                let f = e.frame(&r).to_vec();
                e.release(r)?;
                // Ethernet + IPv4 (IHL 5 in these tests) + UDP to our port, else foreign.
                let ok = f.len() >= 42
                    && f[12..14] == ETH_P_IPV4.to_be_bytes()
                    && f[14 + 9] == IPPROTO_UDP
                    && f[30..34] == local.ip().octets()
                    && f[36..38] == local.port().to_be_bytes();
                if !ok {
                    foreign += 1;
                    continue;
                }
                received += 1;
                bytes += (f.len() - 42) as u64;
                sum = f[42..].iter().fold(sum, |s, b| s.wrapping_mul(31).wrapping_add(u64::from(*b)));
            }
            json!({"received": received, "payload_bytes": bytes, "payload_hash": sum, "foreign": foreign,
                   "bqi": e.info().bqi, "stats": stats(&e), "device": device_stats(&e)})
        }
        Command::Forge { ep, dst, field } => {
            let mut e = open(&ep)?;
            let src = iface::mac(&ep.dev)?;
            let dst = iface::parse_mac(&dst)?;
            let mut good = match ep.local {
                Some(local) => udp_frame(src, dst, local, ep.remote.unwrap_or(SocketAddrV4::new([10, 0, 0, 9].into(), 9)), b"forge-probe"),
                None => raw_frame(&e, src, dst, b"forge-probe"),
            };
            if good.len() < 60 {
                good.resize(60, 0);
            }
            let mut bad = good.clone();
            let (at, want) = match field.as_str() {
                "src-mac" => (6, Reject::SourceMac),
                "ethertype" => (13, Reject::EtherType),
                "src-bqi" => (14 + 5, Reject::SourceBqi),
                "dst-bqi" => (14 + 3, Reject::DestinationBqi),
                "protocol" => (14 + 9, Reject::Protocol),
                "src-ip" => (14 + 15, Reject::SourceIp),
                "dst-ip" => (14 + 19, Reject::DestinationIp),
                "src-port" => (14 + 21, Reject::SourcePort),
                "dst-port" => (14 + 23, Reject::DestinationPort),
                other => bail!("unknown field {other}"),
            };
            bad[at] ^= 0x01;
            e.send_raw(&bad, 0xbad)?;
            e.send_raw(&good, 0x600d)?;
            let mut refused = None;
            let deadline = Instant::now() + Duration::from_secs(5);
            while refused.is_none() && Instant::now() < deadline {
                match e.wait(Duration::from_millis(200))? {
                    Some(Next::Error(ev)) if ev.kind == EventKind::SendRefused => refused = Some(ev),
                    Some(other) => bail!("unexpected event {other:?}"),
                    None => (),
                }
            }
            let ev = refused.context("the forged frame was not refused")?;
            if ev.value != 0xbad || ev.code != want as u16 {
                bail!("refused with code {} cookie {:#x}; expected code {} for {field}", ev.code, ev.value, want as u16);
            }
            let s = stats(&e);
            if s["sent"] != json!(1) || s["template_rejects"] != json!(1) {
                bail!("counters {s}: expected one frame sent and one refused");
            }
            json!({"field": field, "refused_code": ev.code, "stats": s})
        }
        Command::BadRequests { ep } => {
            let mut e = open(&ep)?;
            let info = *e.info();
            let mut seen = Vec::new();
            // Each case: a descriptor at the next position, and what must come back.
            let cases: [(&str, [u8; 16], u16); 4] = [
                ("buffer past the area", Request::Send { buffer: info.buf_count, len: 60, cookie: 0 }.to_bytes(), DescError::Buffer as u16),
                ("send longer than a buffer", Request::Send { buffer: info.buf_count - 1, len: info.buf_size + 1, cookie: 0 }.to_bytes(), DescError::Length as u16),
                ("refill of a pooled buffer", Request::Refill { buffer: 0 }.to_bytes(), DescError::NotOwned as u16),
                ("unknown kind", { let mut b = Request::Refill { buffer: 1 }.to_bytes(); b[0] = 9; b }, DescError::Kind as u16),
            ];
            let mut head = e.request_head();
            for (what, desc, code) in cases {
                head = head.wrapping_add(1);
                e.post_raw(desc, head)?;
                match e.wait(Duration::from_secs(2))? {
                    Some(Next::Error(ev)) if ev.kind == EventKind::BadRequest && ev.code == code => seen.push(what),
                    other => bail!("{what}: expected a bad-request event with code {code}, got {other:?}"),
                }
            }
            // A request head far beyond the queue: refused as a whole.
            let garbage = head.wrapping_add(info.req_entries * 4 + 3);
            if e.post_raw([0; 16], garbage).is_ok() {
                bail!("a garbage request head was accepted");
            }
            match e.wait(Duration::from_secs(2))? {
                Some(Next::Error(ev)) if ev.kind == EventKind::BadIndex => seen.push("garbage request head"),
                other => bail!("garbage head: expected a bad-index event, got {other:?}"),
            }
            // The endpoint still works: a valid send goes out.
            let src = iface::mac(&ep.dev)?;
            let f = raw_frame(&e, src, [0xff; 6], &[0u8; 46]);
            e.send(&f)?;
            std::thread::sleep(Duration::from_millis(200));
            let s = stats(&e);
            if s["sent"] != json!(1) || s["bad_requests"] != json!(5) {
                bail!("counters {s}: expected 1 sent and 5 bad requests");
            }
            json!({"refused": seen, "stats": s})
        }
        Command::Hold { ep, seconds } => {
            let mut e = open(&ep)?;
            println!("{}", json!({"holding": e.info().bqi}));
            let deadline = Instant::now() + Duration::from_secs(seconds);
            let mut ended = false;
            while Instant::now() < deadline {
                match e.wait(Duration::from_millis(500))? {
                    Some(Next::Ended) => {
                        ended = true;
                        break;
                    }
                    Some(Next::Frame(r)) => e.release(r)?,
                    _ => (),
                }
            }
            let kick = e.kick();
            json!({"ended": ended, "kick_after": kick.err().map(|x| x.to_string()), "stats": stats(&e)})
        }
    };
    println!("{out}");
    Ok(())
}
