//! linkbench: raw Ethernet frames user to user over one link, by one of
//! three transports: BQI endpoints (`bqi`), AF_PACKET with a TPACKET_V3
//! ring (`packet`) or AF_XDP in copy mode (`xdp`). One side echoes or
//! sinks, the other pings (round trip per frame, with percentiles) or
//! floods (one-way throughput, measured at the sink). Prints one JSON
//! object, for `make bench` (`BENCH_ONLY=bqi`).

mod bqi_link;
mod link;
mod packet_link;
mod xdp;

use anyhow::{bail, Result};
use bqi::iface;
use clap::{Parser, Subcommand, ValueEnum};
use link::Link;
use polynic_abi::bqi::{LinkHeader, ETH_P_BQI, LINK_HEADER_LEN};
use serde_json::json;
use std::time::{Duration, Instant};

/// Ethertype of the AF_PACKET and AF_XDP benchmark frames (an IEEE 802
/// local experimental ethertype; BQI frames carry it as their inner type).
const ETH_P_BENCH: u16 = 0x88b7;
/// Frames carry this after their headers, then a sequence number.
const MARK: &[u8; 4] = b"lnkb";

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Transport {
    Bqi,
    Packet,
    Xdp,
}

#[derive(Parser)]
#[command(about = "Raw-frame round trip and throughput over one link")]
struct Cli {
    #[arg(long, value_enum)]
    transport: Transport,
    /// Interface.
    #[arg(long)]
    dev: String,
    /// BQI: this endpoint's index.
    #[arg(long, default_value_t = 0)]
    bqi: u16,
    /// BQI: the peer endpoint's index.
    #[arg(long, default_value_t = 0)]
    peer: u16,
    /// Buffers (BQI), ring blocks (packet) or UMEM chunks (xdp).
    #[arg(long, default_value_t = 256)]
    buffers: u32,
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand)]
enum Role {
    /// Send every frame back to its sender, until SECONDS pass.
    Echo {
        #[arg(long, default_value_t = 30)]
        seconds: u64,
    },
    /// COUNT round trips of SIZE-byte frames to DST, one at a time.
    Ping {
        #[arg(long)]
        dst: String,
        #[arg(long)]
        size: usize,
        #[arg(long, default_value_t = 1000)]
        count: u32,
        /// Round trips before the measured ones.
        #[arg(long, default_value_t = 50)]
        warmup: u32,
    },
    /// SIZE-byte frames to DST as fast as they go, for SECONDS.
    Flood {
        #[arg(long)]
        dst: String,
        #[arg(long)]
        size: usize,
        #[arg(long, default_value_t = 3)]
        seconds: u64,
    },
    /// Count frames for at most SECONDS (stops 1 s after the last one).
    Sink {
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
}

/// How frames of this run look: headers, and where the mark goes.
struct Framing {
    src: [u8; 6],
    dst: [u8; 6],
    /// BQI: (own index, peer index).
    bqi: Option<(u16, u16)>,
}

impl Framing {
    fn header_len(&self) -> usize {
        14 + if self.bqi.is_some() { LINK_HEADER_LEN } else { 0 }
    }

    /// A frame of `size` bytes carrying `seq`.
    fn frame(&self, size: usize, seq: u64) -> Vec<u8> {
        let mut f = self.template(size);
        self.stamp(&mut f, seq);
        f
    }

    /// A frame of `size` bytes with its headers and a fixed body pattern,
    /// to be stamped with each sequence number in turn ([`Framing::stamp`]):
    /// a flood then spends its time in the transport, not in building
    /// frames.
    fn template(&self, size: usize) -> Vec<u8> {
        let mut f = vec![0u8; size.max(self.header_len() + 12)];
        f[0..6].copy_from_slice(&self.dst);
        f[6..12].copy_from_slice(&self.src);
        let mut at = 14;
        match self.bqi {
            Some((own, peer)) => {
                f[12..14].copy_from_slice(&ETH_P_BQI.to_be_bytes());
                LinkHeader { dst_bqi: peer, src_bqi: own, inner: ETH_P_BENCH }.encode(&mut f[14..]);
                at += LINK_HEADER_LEN;
            }
            None => f[12..14].copy_from_slice(&ETH_P_BENCH.to_be_bytes()),
        }
        f[at..at + 4].copy_from_slice(MARK);
        for (i, b) in f[at + 12..].iter_mut().enumerate() {
            *b = i as u8;
        }
        f
    }

    /// Writes `seq` into a frame made by [`Framing::template`].
    fn stamp(&self, frame: &mut [u8], seq: u64) {
        let at = self.header_len() + 4;
        frame[at..at + 8].copy_from_slice(&seq.to_le_bytes());
    }

    /// The sequence number of one of this run's frames.
    fn seq_of(&self, frame: &[u8]) -> Option<u64> {
        let at = self.header_len();
        let body = frame.get(at..at + 12)?;
        (&body[..4] == MARK).then(|| u64::from_le_bytes(body[4..12].try_into().unwrap_or([0; 8])))
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let (mut link, indices): (Box<dyn Link>, Option<(u16, u16)>) = match cli.transport {
        Transport::Bqi => {
            let l = bqi_link::BqiLink::open(&cli.dev, cli.bqi, cli.peer, cli.buffers)?;
            let idx = l.indices();
            (Box::new(l), Some(idx))
        }
        Transport::Packet => (
            Box::new(packet_link::PacketLink::open(&cli.dev, ETH_P_BENCH, cli.buffers.clamp(4, 256), 1, 9014)?),
            None,
        ),
        Transport::Xdp => (Box::new(xdp::XdpLink::open(&cli.dev, ETH_P_BENCH, cli.buffers.max(64))?), None),
    };
    let src = iface::mac(&cli.dev)?;
    let out = match cli.role {
        Role::Echo { seconds } => {
            let end = Instant::now() + Duration::from_secs(seconds);
            let mut echoed = 0u64;
            let is_bqi = indices.is_some();
            while Instant::now() < end {
                let mut replies = Vec::new();
                link.recv(Duration::from_millis(200), &mut |f| {
                    let mut reply = f.to_vec();
                    if iface::make_reply(&mut reply, is_bqi).is_some() {
                        replies.push(reply);
                    }
                })?;
                for r in &replies {
                    link.send(r)?;
                }
                link.flush()?;
                echoed += replies.len() as u64;
            }
            json!({"role": "echo", "echoed": echoed})
        }
        Role::Ping { dst, size, count, warmup } => {
            let framing = Framing { src, dst: iface::parse_mac(&dst)?, bqi: indices };
            if size > link.max_frame() {
                bail!("{size}-byte frames exceed this transport's {} bytes", link.max_frame());
            }
            let mut rtts = Vec::with_capacity(count as usize);
            let mut lost = 0u32;
            for seq in 0..u64::from(count + warmup) {
                let f = framing.frame(size, seq);
                let start = Instant::now();
                link.send(&f)?;
                link.flush()?;
                let mut got = false;
                while !got && start.elapsed() < Duration::from_secs(1) {
                    link.recv(Duration::from_millis(100), &mut |r| got |= framing.seq_of(r) == Some(seq))?;
                }
                if !got {
                    lost += 1;
                } else if seq >= u64::from(warmup) {
                    rtts.push(start.elapsed().as_secs_f64() * 1e6);
                }
            }
            rtts.sort_by(f64::total_cmp);
            let mean = rtts.iter().sum::<f64>() / rtts.len().max(1) as f64;
            json!({"role": "ping", "size": size, "count": count, "lost": lost,
                   "rtt_us": {"p50": percentile(&rtts, 0.5), "p90": percentile(&rtts, 0.9),
                              "p99": percentile(&rtts, 0.99), "mean": mean}})
        }
        Role::Flood { dst, size, seconds } => {
            let framing = Framing { src, dst: iface::parse_mac(&dst)?, bqi: indices };
            if size > link.max_frame() {
                bail!("{size}-byte frames exceed this transport's {} bytes", link.max_frame());
            }
            let start = Instant::now();
            let end = start + Duration::from_secs(seconds);
            let mut seq = 0u64;
            let mut refused = 0u64;
            let mut frame = framing.template(size);
            while Instant::now() < end {
                for _ in 0..32 {
                    framing.stamp(&mut frame, seq);
                    match link.send(&frame) {
                        Ok(()) => seq += 1,
                        Err(_) => refused += 1,
                    }
                }
                link.flush()?;
            }
            let secs = start.elapsed().as_secs_f64();
            json!({"role": "flood", "size": size, "sent": seq, "refused": refused, "seconds": secs,
                   "offered_pps": seq as f64 / secs})
        }
        Role::Sink { seconds } => {
            let framing = Framing { src, dst: src, bqi: indices };
            let end = Instant::now() + Duration::from_secs(seconds);
            let (mut frames, mut bytes, mut highest) = (0u64, 0u64, 0u64);
            let mut first: Option<Instant> = None;
            let mut last = Instant::now();
            while Instant::now() < end {
                let n = link.recv(Duration::from_millis(200), &mut |f| {
                    if let Some(seq) = framing.seq_of(f) {
                        frames += 1;
                        bytes += f.len() as u64;
                        highest = highest.max(seq);
                    }
                })?;
                if n > 0 {
                    last = Instant::now();
                    first.get_or_insert(last);
                } else if first.is_some() && last.elapsed() > Duration::from_secs(1) {
                    break;
                }
            }
            let span = first.map(|f| last.duration_since(f).as_secs_f64()).unwrap_or(0.0);
            let (pps, mbit) = if span > 0.0 { (frames as f64 / span, bytes as f64 * 8.0 / span / 1e6) } else { (0.0, 0.0) };
            json!({"role": "sink", "frames": frames, "bytes": bytes, "seconds": span, "pps": pps,
                   "mbit_s": mbit, "lost": (highest + 1).saturating_sub(frames)})
        }
    };
    let mut out = out;
    let counters: serde_json::Map<String, serde_json::Value> =
        link.counters().into_iter().map(|(k, v)| (k, json!(v))).collect();
    out["counters"] = serde_json::Value::Object(counters);
    println!("{out}");
    Ok(())
}
