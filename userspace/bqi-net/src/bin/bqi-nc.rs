//! bqi-nc: a netcat for the user-level stack, for tests and for trying it
//! by hand. TCP connections send a file (if given) and hash everything
//! they receive until the peer closes, both at once; UDP echoes or pings.
//! Each finished connection prints one JSON line.

use anyhow::{bail, Context, Result};
use bqi_net::{Config, NetError, TcpListener, TcpStream, UdpSocket};
use clap::{Parser, Subcommand};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "netcat over polynic BQI endpoints and the user-level stack")]
struct Cli {
    /// Interface whose BQI device to use.
    #[arg(long)]
    dev: String,
    /// Registry socket (default: BQI_REGISTRY or the registry's default).
    #[arg(long)]
    registry: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Connect to ADDR (CONNECTIONS at once), send FILE on each, and hash
    /// what comes back until the peer closes.
    Connect {
        to: SocketAddrV4,
        #[arg(long)]
        file: Option<PathBuf>,
        #[arg(long, default_value_t = 1)]
        connections: usize,
        /// Send all of FILE, shut down writing and wait for the peer's
        /// acknowledgement before reading (a request, then its answer),
        /// instead of both at once.
        #[arg(long)]
        send_first: bool,
    },
    /// Listen on PORT, take CONNECTIONS connections (served at once), send
    /// FILE on each and hash what comes until the peer closes.
    Listen {
        port: u16,
        #[arg(long)]
        file: Option<PathBuf>,
        #[arg(long, default_value_t = 1)]
        connections: usize,
        /// Print the endpoint's counters every this many seconds (for
        /// diagnosis; the listener then never exits).
        #[arg(long)]
        report_every: Option<u64>,
    },
    /// Echo COUNT UDP datagrams received on PORT back to their senders.
    UdpEcho {
        port: u16,
        #[arg(long, default_value_t = 1)]
        count: usize,
    },
    /// Send COUNT numbered datagrams of SIZE bytes to ADDR, each waiting
    /// for its echo; fails if an echo differs or never comes.
    UdpPing {
        to: SocketAddrV4,
        #[arg(long, default_value_t = 10)]
        count: u32,
        #[arg(long, default_value_t = 64)]
        size: usize,
    },
}

/// What one connection moved: bytes received, their SHA-256, and the
/// endpoint's frames sent and received under the link header.
struct Moved {
    bytes: u64,
    sha256: String,
    framed: (u64, u64),
}

/// Sends `data` and hashes what arrives until the peer closes: both at
/// once, or (`send_first`) all of `data` sent and acknowledged first.
fn exchange(mut s: TcpStream, data: &[u8], send_first: bool) -> Result<Moved> {
    let (mut sent, mut got, mut write_shut) = (0usize, 0u64, false);
    if send_first {
        s.write_all(data).context("send")?;
        s.shutdown(Shutdown::Write)?;
        s.flush().context("send")?;
        (sent, write_shut) = (data.len(), true);
    }
    s.set_nonblocking(true);
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut idle = true;
        if sent < data.len() {
            match s.send(&data[sent..]) {
                Ok(n) => {
                    sent += n;
                    idle = false;
                }
                Err(NetError::WouldBlock) => {}
                Err(e) => return Err(e).context("send"),
            }
        } else if !write_shut {
            s.shutdown(Shutdown::Write)?;
            write_shut = true;
        }
        match s.recv(&mut buf) {
            Ok(0) if write_shut => break,
            Ok(0) => {}
            Ok(n) => {
                hash.update(&buf[..n]);
                got += n as u64;
                idle = false;
            }
            Err(NetError::WouldBlock) => {}
            Err(e) => return Err(e).context("receive"),
        }
        if idle {
            let mut pfd = libc::pollfd { fd: s.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: One valid pollfd; the wait is only a pause.
            unsafe { libc::poll(&mut pfd, 1, 5) };
        }
    }
    let c = s.device_counters();
    Ok(Moved { bytes: got, sha256: format!("{:x}", hash.finalize()), framed: (c.framed_sent, c.framed_received) })
}

fn report(what: &str, peer: SocketAddrV4, sent: usize, r: Result<Moved>, started: Instant) -> bool {
    match r {
        Ok(m) => {
            let secs = started.elapsed().as_secs_f64();
            println!(
                "{}",
                serde_json::json!({"what": what, "peer": peer.to_string(), "sent": sent, "received": m.bytes,
                    "sha256": m.sha256, "seconds": secs, "framed_sent": m.framed.0, "framed_received": m.framed.1})
            );
            true
        }
        Err(e) => {
            println!("{}", serde_json::json!({"what": what, "peer": peer.to_string(), "error": format!("{e:#}")}));
            false
        }
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let mut cfg = Config::new(&cli.dev);
    if let Some(r) = cli.registry {
        cfg.registry = r;
    }
    let load = |f: &Option<PathBuf>| -> Result<Vec<u8>> {
        let mut v = Vec::new();
        if let Some(f) = f {
            std::fs::File::open(f).with_context(|| format!("{}", f.display()))?.read_to_end(&mut v)?;
        }
        Ok(v)
    };
    match cli.command {
        Command::Connect { to, file, connections, send_first } => {
            let data = load(&file)?;
            let ok = std::thread::scope(|sc| {
                let threads: Vec<_> = (0..connections)
                    .map(|_| {
                        let (cfg, data) = (&cfg, &data);
                        sc.spawn(move || {
                            let started = Instant::now();
                            let r = TcpStream::connect(cfg, to).context("connect").and_then(|s| exchange(s, data, send_first));
                            report("connect", to, data.len(), r, started)
                        })
                    })
                    .collect();
                threads.into_iter().all(|t| t.join().unwrap_or(false))
            });
            if !ok {
                bail!("a connection failed");
            }
        }
        Command::Listen { port, file, connections, report_every } => {
            let listener = TcpListener::bind(&cfg, port).context("listen")?;
            let data = load(&file)?;
            // Tests wait for this line before they connect.
            eprintln!("listening on {}", listener.local_addr());
            let ok = std::thread::scope(|sc| -> Result<bool> {
                if let Some(every) = report_every {
                    let l = &listener;
                    sc.spawn(move || loop {
                        std::thread::sleep(Duration::from_secs(every));
                        eprintln!("counters: {:?} {:?}", l.device_counters(), l.endpoint_stats().unwrap_or_default());
                    });
                }
                let mut threads = Vec::new();
                for _ in 0..connections {
                    let (s, peer) = listener.accept().context("accept")?;
                    let data = &data;
                    threads.push(sc.spawn(move || {
                        let started = Instant::now();
                        report("accept", peer, data.len(), exchange(s, data, false), started)
                    }));
                }
                Ok(threads.into_iter().all(|t| t.join().unwrap_or(false)))
            })?;
            if !ok {
                bail!("a connection failed");
            }
        }
        Command::UdpEcho { port, count } => {
            let sock = UdpSocket::bind(&cfg, port).context("bind")?;
            // Tests wait for this line before they send.
            eprintln!("echoing on {}", sock.local_addr());
            let mut buf = vec![0u8; 65536];
            for _ in 0..count {
                let (n, from) = sock.recv_from(&mut buf)?;
                sock.send_to(&buf[..n], from)?;
            }
            println!("{}", serde_json::json!({"what": "udp-echo", "echoed": count}));
        }
        Command::UdpPing { to, count, size } => {
            let mut sock = UdpSocket::bind(&cfg, 0).context("bind")?;
            sock.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = vec![0u8; 65536];
            let mut got = 0;
            for i in 0..count {
                let msg: Vec<u8> = (0..size.max(4)).map(|k| (k as u32).wrapping_mul(31).wrapping_add(i) as u8).collect();
                let mut msg = msg;
                msg[..4].copy_from_slice(&i.to_be_bytes());
                // A lost datagram is sent again, up to three times.
                for _ in 0..3 {
                    sock.send_to(&msg, to)?;
                    match sock.recv_from(&mut buf) {
                        Ok((n, from)) if from == to && buf[..n] == msg[..] => {
                            got += 1;
                            break;
                        }
                        Ok((n, from)) => bail!("datagram {i}: a different answer ({n} bytes from {from})"),
                        Err(NetError::WouldTimeOut) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            println!("{}", serde_json::json!({"what": "udp-ping", "sent": count, "answered": got}));
            if got != count {
                bail!("{} of {count} datagrams unanswered", count - got);
            }
        }
    }
    Ok(())
}
