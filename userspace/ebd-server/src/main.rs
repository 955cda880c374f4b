//! `ebd-server`: serves files and block devices to polynic EBD clients over
//! raw Ethernet frames on one interface.
//!
//! # Memory
//!
//! What the server holds is bounded whatever its clients send:
//!
//! - per serving thread, a receive ring shared with the kernel
//!   ([`rxring`]) of `--ring-mib` (20 MiB by default: 2240 slots at MTU
//!   9000), which replaces the socket's receive buffer;
//! - per serving thread, an outbox of at most [`outbox::OUTBOX_BYTES`]
//!   (4 MiB) of response buffers in at most [`outbox::OUTBOX_FRAMES`] (512)
//!   frames, flushed to the socket whenever it is full, and shrunk back to
//!   [`outbox::RETAINED_BYTES`] (1 MiB) once a burst is over;
//! - shared, a table of at most [`session::MAX_SESSIONS`] (4096) sessions,
//!   under 1 MiB, and rate-limited log state of a few KiB.
//!
//! So with the defaults (two threads) about 2 × (20 + 4) + 1 ≈ 50 MiB
//! beyond the program itself, at most; the rings are taken at start.
//!
//! Reads are answered from a shared read-only mapping of each export, so
//! their payloads take no outbox memory (a response is its headers and a
//! span of the mapping, which the kernel copies into the frame). The pages
//! of the mapping are the page cache's: they count in the server's resident
//! size as shared file pages, which the kernel reclaims like any cached
//! file data.

mod access;
mod affinity;
mod export;
mod link;
mod notice;
mod outbox;
mod rxring;
mod serve;
mod session;
mod socket;

use access::{Access, AllowRule};
use anyhow::{bail, Context, Result};
use clap::Parser;
use export::{Export, ExportSpec};
use link::{classify, Recovery, LINK_CHECK_INTERVAL, LINK_DOWN_WAIT};
use notice::Notices;
use outbox::Outbox;
use serve::{Counters, Server, Service};
use rxring::RxRing;
use socket::{PacketSocket, SendReport};
use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

/// Serve EBD exports on a network interface.
///
/// Only frames addressed to the interface's own MAC address are served,
/// and broadcast Info requests (discovery); the server keeps serving while
/// the interface goes down and up, changes its MTU, or is deleted and
/// re-created under the same name.
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
    /// Allow client MAC to use export EXPORT (read-only with ",ro").
    /// Repeatable. An export named by any --allow serves only the clients
    /// listed for it and answers every other client's requests, Info
    /// included, with status Denied; an export named by none serves every
    /// client.
    #[arg(long = "allow", value_name = "EXPORT=MAC[,ro]")]
    allow: Vec<AllowRule>,
    /// Frames taken from the receive ring per batch.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=1024))]
    batch: u16,
    /// MiB of each serving thread's receive ring, shared with the kernel.
    /// Its slots are sized for the interface's MTU (14 per 128 KiB block at
    /// MTU 9000: 2240 frames in 20 MiB; 82 at MTU 1500). Frames arriving
    /// while it is full are lost and resent by their clients, so it should
    /// hold what a burst of the clients' windows brings to one thread.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=4096))]
    ring_mib: u16,
    /// Serving threads, each with its own socket in a packet fanout group:
    /// each client queue's small requests go to one of them (queue modulo
    /// threads); requests of 64 KiB and more are spread over them.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    threads: u16,
    /// After answering, keep polling the socket for this many microseconds
    /// before sleeping in the kernel: a request arriving meanwhile is
    /// taken at once instead of after a wake-up, at the cost of a CPU
    /// spinning for that long after each batch (0: never poll).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    poll_us: u32,
    /// Keep serving thread k on the k-th CPU the server may use (modulo
    /// their number): a client queue's requests are then always answered
    /// from one CPU, which on a veth link is also where the client
    /// handles them.
    #[arg(long)]
    pin: bool,
    /// Answer reads by reading the export into the server's memory and
    /// sending from there, instead of sending from a mapping of the export
    /// (which copies each payload once, page cache to frame, where this
    /// copies it twice). Reads copy anyway for an export that cannot be
    /// mapped, and for all exports once sending from a mapping failed (a
    /// file cut short under the server).
    #[arg(long)]
    copy_reads: bool,
    /// Write the process id here once serving (for scripts).
    #[arg(long)]
    pid_file: Option<std::path::PathBuf>,
}

/// How long a serving thread waits for a frame before it looks again at
/// whether it is asked to stop.
const RECEIVE_WAIT: Duration = Duration::from_millis(200);

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Why a serving thread returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exit {
    /// SIGTERM or SIGINT.
    Stop,
    /// The interface was re-created: every thread returns so that all the
    /// sockets are opened anew, in a new fanout group.
    Reopen,
    /// The interface's MTU changed so that its frames want receive slots
    /// of another size: the sockets are opened anew, as for [`Exit::Reopen`],
    /// with rings sized for the new MTU.
    Resize(u32),
}

/// Link trouble seen by one thread, reported to the log at most once per
/// [`notice::NOTICE_INTERVAL`] per kind (and per MTU, for MTU changes, so
/// that a lowered and a restored MTU are both told).
fn link_notice(service: &Service, what: &'static str, text: impl FnOnce() -> String) {
    link_notice_about(service, what, 0, text);
}

fn link_notice_about(service: &Service, what: &'static str, about: u32, text: impl FnOnce() -> String) {
    let [a, b, c, d] = about.to_be_bytes();
    service.notices().note(what, [0, 0, a, b, c, d], text);
}

/// One serving thread: receive a batch, answer it (sending as the outbox
/// fills), and ride out whatever the link does.
fn serve(
    socket: PacketSocket,
    mut ring: RxRing,
    mut server: Server,
    service: Arc<Service>,
    reopen: Arc<AtomicBool>,
    batch: usize,
    poll: Duration,
) -> Result<(Server, u64, Exit)> {
    // When the last batch was answered: polling lasts `poll` from there.
    let mut answered: Option<Instant> = None;
    let mut out = Outbox::new();
    let mut dropped = 0u64;
    let mut checked = Instant::now();
    let mut check_now = false;
    loop {
        if STOP.load(Ordering::Relaxed) {
            return Ok((server, dropped, Exit::Stop));
        }
        if reopen.load(Ordering::Relaxed) {
            return Ok((server, dropped, Exit::Reopen));
        }
        if check_now || checked.elapsed() >= LINK_CHECK_INTERVAL {
            check_now = false;
            checked = Instant::now();
            if let Ok(n @ 1..) = socket.ring_drops() {
                server.counters.ring_full += u64::from(n);
                link_notice(&service, "ring", || {
                    format!(
                        "{}: {n} frame(s) arrived with the receive ring's {} slots full and were lost \
                         (clients resend them); --ring-mib raises it",
                        socket.name,
                        ring.slots()
                    )
                });
            }
            match socket.query() {
                Ok(now) if now.ifindex == socket.link.ifindex => {
                    if socket::frame_for(now.mtu) != ring.max_frame() {
                        reopen.store(true, Ordering::Relaxed);
                        return Ok((server, dropped, Exit::Resize(now.mtu)));
                    }
                    if server.set_link(now.mac, now.mtu) {
                        let payload = server.max_payload();
                        link_notice_about(&service, "mtu", now.mtu, || {
                            format!("{}: MTU {}, reads answered in frames of up to {payload} bytes", socket.name, now.mtu)
                        });
                    }
                }
                Ok(_) => {
                    // Re-created (another index): this socket will never
                    // receive again.
                    reopen.store(true, Ordering::Relaxed);
                    return Ok((server, dropped, Exit::Reopen));
                }
                Err(e) if e.raw_os_error() == Some(libc::ENODEV) => {
                    // Deleted: wait for it to come back, in the supervisor.
                    reopen.store(true, Ordering::Relaxed);
                    return Ok((server, dropped, Exit::Reopen));
                }
                Err(_) => {}
            }
        }
        let polling = answered.is_some_and(|at| at.elapsed() < poll);
        if polling && !ring.ready() {
            std::hint::spin_loop();
            continue;
        }
        if !polling {
            match socket.wait(&ring, RECEIVE_WAIT) {
                Ok(true) => {}
                Ok(false) => {
                    out.settle();
                    continue;
                }
                Err(e) => {
                    answered = None;
                    match classify(&e) {
                        Recovery::Retry | Recovery::DropFrame => out.settle(),
                        Recovery::LinkDown => {
                            link_notice(&service, "down", || format!("{}: {e}; waiting for the link", socket.name));
                            std::thread::sleep(LINK_DOWN_WAIT);
                            check_now = true;
                        }
                        Recovery::Replan | Recovery::Reopen => check_now = true,
                        Recovery::Fatal => return Err(e).context("receiving"),
                    }
                    continue;
                }
            }
        }
        let taken = ring.take(batch);
        let mut report = SendReport::default();
        let mut send = |o: &Outbox| {
            if report.fatal.is_none() {
                let r = socket.send_all(o.frames());
                report.dropped += r.dropped;
                report.too_big += r.too_big;
                report.link_down |= r.link_down;
                report.gone |= r.gone;
                report.fatal = r.fatal;
                report.unreadable += r.unreadable;
            }
        };
        // Frames the host itself sent are not requests to it; a frame
        // longer than a ring slot is longer than any request.
        let mut too_long = 0;
        let frames = taken
            .frames()
            .filter(|f| !f.outgoing)
            .filter(|f| {
                too_long += u64::from(f.truncated);
                !f.truncated
            })
            .map(|f| f.data);
        server.handle_batch(frames, &mut out, &mut send);
        drop(taken);
        server.counters.malformed += too_long;
        if !poll.is_zero() {
            answered = Some(Instant::now());
        }
        dropped += (report.dropped + report.too_big + report.unreadable) as u64;
        if report.unreadable > 0 && service.stop_mappings() {
            link_notice(&service, "unmapped", || {
                format!(
                    "{}: {} read response(s) could not be sent from a mapped export (cut short under the server?); \
                     reads are copied from now on",
                    socket.name, report.unreadable
                )
            });
        }
        if let Some(e) = report.fatal {
            return Err(e).context("sending");
        }
        if report.too_big > 0 {
            link_notice(&service, "msgsize", || {
                format!("{}: {} frame(s) larger than the MTU dropped; re-reading it", socket.name, report.too_big)
            });
            check_now = true;
        }
        if report.link_down || report.gone {
            link_notice(&service, "down", || format!("{}: link down while sending; waiting for it", socket.name));
            std::thread::sleep(LINK_DOWN_WAIT);
            check_now = true;
        }
    }
}

/// Opens one socket per thread on `interface`, each with a receive ring of
/// `ring_bytes`, in fanout group `group`.
fn open_sockets(interface: &str, threads: u16, group: u16, ring_bytes: usize) -> Result<Vec<(PacketSocket, RxRing)>> {
    let mut sockets = Vec::new();
    for _ in 0..threads {
        let (socket, ring) = PacketSocket::open(interface, ring_bytes)
            .with_context(|| format!("cannot open a packet socket on {interface} (needs CAP_NET_RAW)"))?;
        if threads > 1 {
            socket.join_fanout(group).context("joining the packet fanout group")?;
        }
        sockets.push((socket, ring));
    }
    if threads > 1 {
        sockets[0].0.steer_fanout_by_queue().context("installing the fanout steering program")?;
    }
    Ok(sockets)
}

/// Waits until `interface` can be opened again (or a stop is asked for).
fn reopen_sockets(
    service: &Service,
    interface: &str,
    threads: u16,
    group: u16,
    ring_bytes: usize,
) -> Option<Vec<(PacketSocket, RxRing)>> {
    loop {
        if STOP.load(Ordering::Relaxed) {
            return None;
        }
        match open_sockets(interface, threads, group, ring_bytes) {
            Ok(s) => return Some(s),
            Err(e) if e.chain().any(|c| c.downcast_ref::<std::io::Error>().and_then(|e| e.raw_os_error()) == Some(libc::ENODEV)) => {
                link_notice(service, "reopen", || format!("{interface} is gone; waiting for it to come back"))
            }
            Err(e) => link_notice(service, "reopen", || format!("{interface}: {e:#}; retrying")),
        }
        std::thread::sleep(LINK_DOWN_WAIT);
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let exports: Vec<Export> =
        args.exports.iter().map(|e| Export::open_with(e, !args.copy_reads)).collect::<Result<_, _>>()?;
    let access = Access::new(&args.allow, exports.len())?;
    let service = Arc::new(Service::new(exports, access, Notices::stderr()));
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: The handler only stores to an atomic, which is
        // async-signal-safe. No SA_RESTART, so a blocked receive returns.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    let base_group = (std::process::id() & 0xffff) as u16;
    let ring_bytes = usize::from(args.ring_mib) << 20;
    let mut sockets = open_sockets(&args.interface, args.threads, base_group, ring_bytes)?;
    let link = sockets[0].0.link;
    let mut servers = Vec::new();
    for _ in 0..args.threads {
        let Some(server) = Server::new(service.clone(), link.mac, link.mtu) else {
            bail!("the MTU of {} ({}) cannot carry one sector per frame", args.interface, link.mtu);
        };
        servers.push(server);
    }
    eprintln!(
        "ebd-server: serving {} export(s) on {} (mtu {}) with {} thread(s)",
        args.exports.len(),
        args.interface,
        link.mtu,
        args.threads
    );
    if let Some(p) = &args.pid_file {
        std::fs::write(p, format!("{}\n", std::process::id())).with_context(|| format!("writing {}", p.display()))?;
    }
    let batch = usize::from(args.batch);
    let poll = Duration::from_micros(u64::from(args.poll_us));
    let cpus = if args.pin { affinity::allowed_cpus().context("reading the CPUs the server may use")? } else { Vec::new() };
    let mut dropped = 0;
    for generation in 1u16.. {
        let reopen = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = sockets
            .drain(..)
            .zip(servers.drain(..))
            .enumerate()
            .map(|(k, ((socket, ring), mut server))| {
                if server.set_link(socket.link.mac, socket.link.mtu) {
                    let (payload, mtu) = (server.max_payload(), socket.link.mtu);
                    link_notice_about(&service, "mtu", mtu, || {
                        format!("{}: MTU {mtu}, reads answered in frames of up to {payload} bytes", socket.name)
                    });
                }
                let (service, reopen) = (service.clone(), reopen.clone());
                let cpu = (!cpus.is_empty()).then(|| cpus[k % cpus.len()]);
                std::thread::spawn(move || {
                    if let Some(cpu) = cpu {
                        if let Err(e) = affinity::pin_current_thread(cpu) {
                            eprintln!("ebd-server: thread {k} not pinned to CPU {cpu}: {e}");
                        }
                    }
                    serve(socket, ring, server, service, reopen, batch, poll)
                })
            })
            .collect();
        let mut exits = Vec::new();
        for h in handles {
            let (server, d, exit) = h.join().map_err(|_| anyhow::anyhow!("a serving thread panicked"))??;
            servers.push(server);
            dropped += d;
            exits.push(exit);
        }
        if STOP.load(Ordering::Relaxed) || exits.iter().all(|&e| e == Exit::Stop) {
            break;
        }
        match exits.iter().find_map(|e| if let Exit::Resize(mtu) = e { Some(*mtu) } else { None }) {
            Some(mtu) => eprintln!(
                "ebd-server: {} has MTU {mtu} now; opening its sockets again with receive slots for its frames",
                args.interface
            ),
            None => eprintln!("ebd-server: {} was deleted or re-created; opening it again", args.interface),
        }
        // A new group: the old one may still be bound to the old device.
        match reopen_sockets(&service, &args.interface, args.threads, base_group.wrapping_add(generation), ring_bytes) {
            Some(s) => sockets = s,
            None => break,
        }
    }
    let mut total = Counters::default();
    for s in &servers {
        total += s.counters;
    }
    eprintln!(
        "ebd-server: stopped; {} requests, {} responses ({} errors, {} not sent), {} malformed, {} stale, \
         {} denied, {} from bad sources, {} misaddressed, {} v1, {} unframeable, {} lost to a full ring",
        total.requests,
        total.responses,
        total.errors,
        dropped,
        total.malformed,
        total.stale,
        total.denied,
        total.bad_source,
        total.misaddressed,
        total.v1,
        total.unframeable,
        total.ring_full
    );
    Ok(())
}
