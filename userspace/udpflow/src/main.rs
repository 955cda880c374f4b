//! `udpflow`: numbered UDP flows for measuring a forwarding path.
//!
//! `udpflow send` puts datagrams of one size on the network as fast as the
//! socket takes them (one `sendmmsg` per batch) for a given time; `udpflow
//! sink` receives one flow and accounts for every datagram: received whole,
//! lost, duplicated, reordered, changed on the way. Both print JSON.

mod socket;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use serde::Serialize;
use std::{
    io,
    net::{SocketAddr, UdpSocket},
    time::{Duration, Instant},
};
use udpflow::{datagram, tally::Tally};

/// Numbered UDP flows: a batched sender and a checking sink.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Send one flow as fast as the socket takes it.
    Send {
        /// Where to: ADDRESS:PORT (IPv4).
        #[arg(long)]
        to: SocketAddr,
        /// IPv4 packet size in bytes: IP and UDP headers (28) and payload.
        #[arg(long, value_parser = clap::value_parser!(u16).range(MIN_PACKET as i64..=MAX_PACKET as i64))]
        size: u16,
        /// How long to send.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// The flow's id, written in every datagram.
        #[arg(long, default_value_t = 0)]
        flow: u32,
        /// Datagrams per system call.
        #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=1024))]
        batch: u16,
    },
    /// Receive one flow and account for every datagram.
    Sink {
        /// Address to listen on: ADDRESS:PORT.
        #[arg(long)]
        bind: SocketAddr,
        /// The flow's id; datagrams of other flows are counted apart.
        #[arg(long, default_value_t = 0)]
        flow: u32,
        /// Stop after this long in all.
        #[arg(long, default_value_t = 30.0)]
        seconds: f64,
        /// Stop once the flow has been silent this long after it started.
        #[arg(long, default_value_t = 1.0)]
        idle: f64,
        /// Create this file once listening, for a script to wait on.
        #[arg(long)]
        ready: Option<std::path::PathBuf>,
    },
}

/// IP (20) + UDP (8) + the datagram header.
const MIN_PACKET: usize = 28 + datagram::HEADER_LEN;
/// The largest IPv4 packet.
const MAX_PACKET: usize = 65_535;
/// Datagrams a sink takes per system call.
const RECV_BATCH: usize = 64;

/// What a sender prints.
#[derive(Debug, Serialize)]
struct SendReport {
    flow: u32,
    /// Datagrams the socket accepted.
    sent: u64,
    /// Their payload bytes.
    bytes: u64,
    seconds: f64,
    mbit_s: f64,
    packets_s: f64,
    /// Times the device queue was full (`ENOBUFS`) and the sender waited.
    queue_full: u64,
    /// Datagrams refused because no one listened (ICMP port unreachable).
    refused: u64,
}

fn send(to: SocketAddr, size: u16, seconds: f64, flow: u32, batch: u16) -> Result<SendReport> {
    if !(seconds > 0.0 && seconds.is_finite()) {
        bail!("--seconds must be positive, not {seconds}");
    }
    let sock = UdpSocket::bind("0.0.0.0:0").context("UDP socket")?;
    sock.connect(to).with_context(|| format!("no route to {to}"))?;
    let mut bufs = vec![vec![0u8; usize::from(size) - 28]; usize::from(batch)];
    let (mut seq, mut queue_full, mut refused) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    while Instant::now() < deadline {
        for (i, b) in bufs.iter_mut().enumerate() {
            datagram::fill(b, flow, seq + i as u64);
        }
        let mut done = 0;
        while done < bufs.len() {
            match socket::send_batch(&sock, &bufs[done..]) {
                Ok(n) => done += n,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    queue_full += 1;
                    std::thread::sleep(Duration::from_micros(200));
                }
                // The error of an earlier datagram; this one was not sent.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => refused += 1,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e).with_context(|| format!("sending to {to} after {} datagrams", seq + done as u64)),
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        seq += done as u64;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let bytes = seq * (u64::from(size) - 28);
    Ok(SendReport {
        flow,
        sent: seq,
        bytes,
        seconds: elapsed,
        mbit_s: bytes as f64 * 8.0 / elapsed / 1e6,
        packets_s: seq as f64 / elapsed,
        queue_full,
        refused,
    })
}

fn sink(bind: SocketAddr, flow: u32, seconds: f64, idle: f64, ready: Option<&std::path::Path>) -> Result<Tally> {
    for (name, v) in [("--seconds", seconds), ("--idle", idle)] {
        if !(v > 0.0 && v.is_finite()) {
            bail!("{name} must be positive, not {v}");
        }
    }
    let sock = UdpSocket::bind(bind).with_context(|| format!("listening on {bind}"))?;
    socket::set_receive_buffer(&sock, 8 << 20).context("receive buffer")?;
    sock.set_read_timeout(Some(Duration::from_millis(100))).context("receive timeout")?;
    if let Some(path) = ready {
        std::fs::write(path, b"").with_context(|| format!("ready file {}", path.display()))?;
    }
    let mut bufs = vec![vec![0u8; MAX_PACKET]; RECV_BATCH];
    let mut tally = Tally::new(flow);
    let start = Instant::now();
    let (deadline, idle) = (start + Duration::from_secs_f64(seconds), Duration::from_secs_f64(idle));
    let mut last_arrival = start;
    loop {
        let lens = socket::recv_batch(&sock, &mut bufs).with_context(|| format!("receiving on {bind}"))?;
        let now = Instant::now();
        for (buf, len) in bufs.iter().zip(&lens) {
            match len {
                Some(n) => tally.count(&buf[..*n], now),
                // Cut short by the buffer: cannot be whole.
                None => tally.count(&[], now),
            }
        }
        if !lens.is_empty() {
            last_arrival = now;
        }
        if now >= deadline || (tally.started() && now.duration_since(last_arrival) >= idle) {
            return Ok(tally);
        }
    }
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Send { to, size, seconds, flow, batch } => {
            println!("{}", serde_json::to_string(&send(to, size, seconds, flow, batch)?)?);
        }
        Command::Sink { bind, flow, seconds, idle, ready } => {
            let tally = sink(bind, flow, seconds, idle, ready.as_deref())?;
            println!("{}", serde_json::to_string(&tally.report())?);
        }
    }
    Ok(())
}
