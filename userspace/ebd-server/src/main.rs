//! `ebd-server`: serves files and block devices to polynic EBD clients over
//! raw Ethernet frames on one interface.

mod export;
mod serve;
mod socket;

use anyhow::{bail, Context, Result};
use clap::Parser;
use export::{Export, ExportSpec};
use serve::{Outbox, Server};
use socket::PacketSocket;
use std::sync::atomic::{AtomicBool, Ordering};

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
    /// Write the process id here once serving (for scripts).
    #[arg(long)]
    pid_file: Option<std::path::PathBuf>,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn main() -> Result<()> {
    let args = Args::parse();
    let exports = args
        .exports
        .iter()
        .map(Export::open)
        .collect::<Result<Vec<_>, _>>()?;
    let socket = PacketSocket::open(&args.interface)
        .with_context(|| format!("cannot open a packet socket on {} (needs CAP_NET_RAW)", args.interface))?;
    let Some(mut server) = Server::new(exports, socket.mac, socket.mtu) else {
        bail!("the MTU of {} ({}) cannot carry one sector per frame", args.interface, socket.mtu);
    };
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: The handler only stores to an atomic, which is
        // async-signal-safe. No SA_RESTART, so a blocked receive returns.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    eprintln!(
        "ebd-server: serving {} export(s) on {} (mtu {})",
        args.exports.len(),
        args.interface,
        socket.mtu
    );
    if let Some(p) = &args.pid_file {
        std::fs::write(p, format!("{}\n", std::process::id())).with_context(|| format!("writing {}", p.display()))?;
    }
    let n = usize::from(args.batch);
    let mut bufs = vec![Vec::new(); n];
    let mut lens = vec![0usize; n];
    let mut out = Outbox::default();
    let mut refused = 0;
    while !STOP.load(Ordering::Relaxed) {
        let got = match socket.recv_batch(&mut bufs, &mut lens) {
            Ok(got) => got,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("receiving"),
        };
        out.clear();
        for i in 0..got {
            if lens[i] > 0 {
                server.handle(&bufs[i][..lens[i]], &mut out);
            }
        }
        refused += socket.send_all(out.frames()).context("sending")?;
    }
    let c = server.counters;
    eprintln!(
        "ebd-server: stopped; {} requests, {} responses ({} errors, {} refused by the device), {} malformed",
        c.requests, c.responses, c.errors, refused, c.malformed
    );
    Ok(())
}
