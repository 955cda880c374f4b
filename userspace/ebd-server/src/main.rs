//! `ebd-server`: serves files and block devices to polynic EBD clients over
//! raw Ethernet frames on one interface.

mod export;
mod serve;
mod socket;

use anyhow::{bail, Context, Result};
use clap::Parser;
use export::{Export, ExportSpec};
use serve::{Counters, Server};
use socket::PacketSocket;
use std::{
    io::ErrorKind,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

/// Serve EBD exports on a network interface.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Interface to serve on.
    #[arg(short, long)]
    interface: String,
    /// An export: PATH or PATH,ro. Repeat for several; the first is export
    /// 0, the next export 1, and so on.
    #[arg(short, long = "export", required = true, value_name = "PATH[,ro]")]
    exports: Vec<ExportSpec>,
    /// Frames received per batch.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=1024))]
    batch: u16,
    /// Serving threads, each with its own socket in a packet fanout group:
    /// large requests are spread over them by tag, small ones go to the
    /// first.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    threads: u16,
    /// Write the process id here once serving (for scripts).
    #[arg(long)]
    pid_file: Option<std::path::PathBuf>,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// One serving thread: receive a batch, answer it, send the answers.
fn serve(socket: PacketSocket, mut server: Server, batch: usize) -> Result<(Counters, usize)> {
    let mut bufs = vec![Vec::new(); batch];
    let mut lens = vec![0usize; batch];
    let mut out = server.outbox();
    let mut refused = 0;
    while !STOP.load(Ordering::Relaxed) {
        let got = match socket.recv_batch(&mut bufs, &mut lens) {
            Ok(got) => got,
            Err(e) if matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) => return Err(e).context("receiving"),
        };
        out.clear();
        let frames = bufs[..got].iter().zip(&lens[..got]).filter(|(_, &n)| n > 0).map(|(b, &n)| &b[..n]);
        server.handle_batch(frames, &mut out);
        refused += socket.send_all(out.frames()).context("sending")?;
    }
    Ok((server.counters, refused))
}

fn main() -> Result<()> {
    let args = Args::parse();
    let exports: Arc<[Export]> = args
        .exports
        .iter()
        .map(Export::open)
        .collect::<Result<Vec<_>, _>>()?
        .into();
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: The handler only stores to an atomic, which is
        // async-signal-safe. No SA_RESTART, so a blocked receive returns.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    let group = (std::process::id() & 0xffff) as u16;
    let mut workers = Vec::new();
    let mut mtu = 0;
    for _ in 0..args.threads {
        let socket = PacketSocket::open(&args.interface)
            .with_context(|| format!("cannot open a packet socket on {} (needs CAP_NET_RAW)", args.interface))?;
        if args.threads > 1 {
            socket.join_fanout(group).context("joining the packet fanout group")?;
        }
        socket.set_receive_timeout(200).context("setting the receive timeout")?;
        mtu = socket.mtu;
        let Some(server) = Server::new(exports.clone(), socket.mac, socket.mtu) else {
            bail!("the MTU of {} ({}) cannot carry one sector per frame", args.interface, socket.mtu);
        };
        workers.push((socket, server));
    }
    if args.threads > 1 {
        workers[0].0.steer_fanout_by_request().context("installing the fanout steering program")?;
    }
    eprintln!(
        "ebd-server: serving {} export(s) on {} (mtu {}) with {} thread(s)",
        args.exports.len(),
        args.interface,
        mtu,
        args.threads
    );
    if let Some(p) = &args.pid_file {
        std::fs::write(p, format!("{}\n", std::process::id())).with_context(|| format!("writing {}", p.display()))?;
    }
    let batch = usize::from(args.batch);
    let handles: Vec<_> = workers
        .into_iter()
        .map(|(socket, server)| std::thread::spawn(move || serve(socket, server, batch)))
        .collect();
    let mut total = Counters::default();
    let mut refused = 0;
    for h in handles {
        let (c, r) = h.join().map_err(|_| anyhow::anyhow!("a serving thread panicked"))??;
        total += c;
        refused += r;
    }
    eprintln!(
        "ebd-server: stopped; {} requests, {} responses ({} errors, {} refused by the device), {} malformed",
        total.requests, total.responses, total.errors, refused, total.malformed
    );
    Ok(())
}
