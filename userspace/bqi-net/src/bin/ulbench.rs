//! ulbench: round trip and streaming throughput of the user-level stack
//! (bqi-net), for `make bench` (`BENCH_ONLY=userlevel`). One side serves
//! (echo or sink), the other pings (round trip per message, percentiles)
//! or streams (measured at the sink). Prints one JSON object.

use anyhow::{bail, Context, Result};
use bqi_net::{Config, NetError, TcpListener, TcpStream, UdpSocket};
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddrV4};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Round trip and throughput of user-level UDP and TCP over BQI endpoints")]
struct Cli {
    /// Interface whose BQI device to use.
    #[arg(long)]
    dev: String,
    /// Registry socket (default: BQI_REGISTRY or the registry's default).
    #[arg(long)]
    registry: Option<PathBuf>,
    /// Spin this many microseconds on the event queue before sleeping.
    #[arg(long)]
    busy_poll_us: Option<u64>,
    #[command(subcommand)]
    role: Role,
}

/// A ping-pong: COUNT messages of SIZE bytes to ADDR, after WARMUP.
#[derive(Args)]
struct Ping {
    to: SocketAddrV4,
    #[arg(long)]
    size: usize,
    #[arg(long, default_value_t = 1000)]
    count: u32,
    #[arg(long, default_value_t = 50)]
    warmup: u32,
}

#[derive(Subcommand)]
enum Role {
    /// Echo UDP datagrams on PORT for SECONDS.
    UdpEcho {
        port: u16,
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// UDP ping-pong with ADDR: COUNT messages of SIZE bytes after WARMUP.
    UdpPing(Ping),
    /// Accept one TCP connection on PORT and echo messages of SIZE bytes.
    TcpEcho {
        port: u16,
        #[arg(long)]
        size: usize,
    },
    /// TCP ping-pong with ADDR: COUNT messages of SIZE bytes after WARMUP.
    TcpPing(Ping),
    /// Accept one TCP connection on PORT and read it to the end; reports
    /// the rate between the first and the last byte.
    TcpSink { port: u16 },
    /// Send to ADDR as fast as the connection takes for SECONDS.
    TcpStream {
        to: SocketAddrV4,
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// Count UDP datagrams arriving on PORT until SECONDS pass with none.
    UdpSink {
        port: u16,
        #[arg(long, default_value_t = 2)]
        idle: u64,
    },
    /// Send datagrams of SIZE bytes to ADDR as fast as possible.
    UdpStream {
        to: SocketAddrV4,
        #[arg(long, default_value_t = 1472)]
        size: usize,
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
}

fn percentiles(mut us: Vec<f64>) -> serde_json::Value {
    us.sort_by(f64::total_cmp);
    let p = |q: f64| if us.is_empty() { 0.0 } else { us[((us.len() - 1) as f64 * q).round() as usize] };
    let mean = us.iter().sum::<f64>() / us.len().max(1) as f64;
    json!({"p50": p(0.5), "p90": p(0.9), "p99": p(0.99), "mean": mean, "samples": us.len()})
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let mut cfg = Config::new(&cli.dev);
    if let Some(r) = cli.registry {
        cfg.registry = r;
    }
    cfg.busy_poll = cli.busy_poll_us.map(Duration::from_micros);
    let out = match cli.role {
        Role::UdpEcho { port, seconds } => {
            let mut s = UdpSocket::bind(&cfg, port)?;
            eprintln!("ready");
            s.set_read_timeout(Some(Duration::from_millis(200)));
            let end = Instant::now() + Duration::from_secs(seconds);
            let (mut buf, mut n_echoed) = (vec![0u8; 65536], 0u64);
            while Instant::now() < end {
                match s.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        s.send_to(&buf[..n], from)?;
                        n_echoed += 1;
                    }
                    Err(NetError::WouldTimeOut) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            json!({"role": "udp-echo", "echoed": n_echoed})
        }
        Role::UdpPing(Ping { to, size, count, warmup }) => {
            let mut s = UdpSocket::bind(&cfg, 0)?;
            s.set_read_timeout(Some(Duration::from_secs(1)));
            let msg = vec![0x5au8; size];
            let mut buf = vec![0u8; 65536];
            let (mut rtts, mut lost) = (Vec::new(), 0u32);
            for i in 0..count + warmup {
                let start = Instant::now();
                s.send_to(&msg, to)?;
                match s.recv_from(&mut buf) {
                    Ok((n, _)) if n == size => {
                        if i >= warmup {
                            rtts.push(start.elapsed().as_secs_f64() * 1e6);
                        }
                    }
                    Ok(_) | Err(NetError::WouldTimeOut) => lost += 1,
                    Err(e) => return Err(e.into()),
                }
            }
            json!({"role": "udp-ping", "size": size, "count": count, "lost": lost, "rtt_us": percentiles(rtts)})
        }
        Role::TcpEcho { port, size } => {
            let l = TcpListener::bind(&cfg, port)?;
            eprintln!("ready");
            let (mut s, _) = l.accept()?;
            let mut buf = vec![0u8; size];
            let mut n = 0u64;
            loop {
                match s.read_exact(&mut buf) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(e.into()),
                }
                s.write_all(&buf)?;
                n += 1;
            }
            json!({"role": "tcp-echo", "echoed": n})
        }
        Role::TcpPing(Ping { to, size, count, warmup }) => {
            let mut s = TcpStream::connect(&cfg, to)?;
            let msg = vec![0x5au8; size];
            let mut buf = vec![0u8; size];
            let mut rtts = Vec::new();
            for i in 0..count + warmup {
                let start = Instant::now();
                s.write_all(&msg)?;
                s.read_exact(&mut buf).context("echo")?;
                if i >= warmup {
                    rtts.push(start.elapsed().as_secs_f64() * 1e6);
                }
            }
            s.shutdown(Shutdown::Write)?;
            json!({"role": "tcp-ping", "size": size, "count": count, "lost": 0, "rtt_us": percentiles(rtts)})
        }
        Role::TcpSink { port } => {
            let l = TcpListener::bind(&cfg, port)?;
            eprintln!("ready");
            let (mut s, _) = l.accept()?;
            let mut buf = vec![0u8; 1 << 16];
            let (mut bytes, mut first, mut last) = (0u64, None, Instant::now());
            loop {
                let n = s.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                first.get_or_insert_with(Instant::now);
                bytes += n as u64;
                last = Instant::now();
            }
            let secs = first.map_or(0.0, |f| last.duration_since(f).as_secs_f64());
            if secs <= 0.0 {
                bail!("nothing received");
            }
            json!({"role": "tcp-sink", "bytes": bytes, "seconds": secs, "mbit_s": bytes as f64 * 8.0 / secs / 1e6})
        }
        Role::TcpStream { to, seconds } => {
            let mut s = TcpStream::connect(&cfg, to)?;
            let buf = vec![0xa5u8; 1 << 16];
            let end = Instant::now() + Duration::from_secs(seconds);
            let mut sent = 0u64;
            while Instant::now() < end {
                sent += s.send(&buf)? as u64;
            }
            s.shutdown(Shutdown::Write)?;
            s.drain()?;
            json!({"role": "tcp-stream", "bytes": sent})
        }
        Role::UdpSink { port, idle } => {
            let mut s = UdpSocket::bind(&cfg, port)?;
            eprintln!("ready");
            let mut buf = vec![0u8; 65536];
            let (mut n, mut bytes, mut first, mut last) = (0u64, 0u64, None, Instant::now());
            s.set_read_timeout(Some(Duration::from_secs(30)));
            loop {
                match s.recv_from(&mut buf) {
                    Ok((len, _)) => {
                        first.get_or_insert_with(Instant::now);
                        n += 1;
                        bytes += len as u64;
                        last = Instant::now();
                        s.set_read_timeout(Some(Duration::from_secs(idle)));
                    }
                    Err(NetError::WouldTimeOut) => break,
                    Err(e) => return Err(e.into()),
                }
            }
            let secs = first.map_or(0.0, |f| last.duration_since(f).as_secs_f64());
            if secs <= 0.0 {
                bail!("nothing received");
            }
            json!({"role": "udp-sink", "datagrams": n, "bytes": bytes, "seconds": secs,
                   "mbit_s": bytes as f64 * 8.0 / secs / 1e6})
        }
        Role::UdpStream { to, size, seconds } => {
            let s = UdpSocket::bind(&cfg, 0)?;
            let msg = vec![0x3cu8; size];
            let end = Instant::now() + Duration::from_secs(seconds);
            let mut n = 0u64;
            while Instant::now() < end {
                s.send_to(&msg, to)?;
                n += 1;
            }
            json!({"role": "udp-stream", "datagrams": n})
        }
    };
    println!("{out}");
    Ok(())
}
