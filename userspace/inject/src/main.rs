//! `inject`: sends raw Ethernet frames on a net device, many per system
//! call, so that a test can put 100 000 hostile frames on a link in seconds
//! even in an emulated guest (a Python loop needs minutes there).
//!
//! The frames are given in hex (`ff:ff:..` separators allowed) and sent
//! round robin until `--count` frames went out. A frame's first 12 bytes
//! are its addresses: nothing is filled in or checked, which is the point.

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::{ffi::CString, io, mem, os::fd::{AsRawFd, FromRawFd, OwnedFd}};

/// Send raw Ethernet frames in bulk.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// The net device to send on.
    #[arg(long)]
    dev: String,
    /// Frames to send in all (the given frames, round robin).
    #[arg(long, default_value_t = 1)]
    count: u64,
    /// Enter this network namespace first (a name under /run/netns, or a path).
    #[arg(long)]
    netns: Option<String>,
    /// The frames, in hex; `:` and `.` separators are ignored.
    #[arg(required = true)]
    frames: Vec<String>,
}

/// Frames handed to the kernel per system call.
const BATCH: usize = 256;

/// The bytes of a frame written in hex.
fn parse_hex(text: &str) -> Result<Vec<u8>> {
    let digits: Vec<u8> = text.bytes().filter(|b| *b != b':' && *b != b'.').collect();
    if digits.len() % 2 != 0 {
        bail!("frame {text:?}: odd number of hex digits");
    }
    digits
        .chunks(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).context("not hex")?;
            u8::from_str_radix(s, 16).with_context(|| format!("frame {text:?}: {s:?} is not a hex byte"))
        })
        .collect()
}

fn enter_netns(ns: &str) -> Result<()> {
    let path = if ns.contains('/') { ns.to_string() } else { format!("/run/netns/{ns}") };
    let f = std::fs::File::open(&path).with_context(|| format!("network namespace {ns:?} ({path})"))?;
    // SAFETY: `f` is open for the call; setns only reads the descriptor.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error()).with_context(|| format!("entering network namespace {ns:?}"));
    }
    Ok(())
}

/// A packet socket bound to `dev`, sending whole frames.
fn open(dev: &str) -> Result<(OwnedFd, libc::sockaddr_ll)> {
    let name = CString::new(dev).context("device name")?;
    // SAFETY: `name` is a valid C string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error()).with_context(|| format!("no net device {dev:?}"));
    }
    // SAFETY: plain socket creation; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error()).context("packet socket (needs CAP_NET_RAW)");
    }
    // SAFETY: `fd` is a new descriptor owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_ifindex = index as i32;
    addr.sll_halen = 6;
    Ok((fd, addr))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let frames = cli.frames.iter().map(|f| parse_hex(f)).collect::<Result<Vec<_>>>()?;
    if let Some(f) = frames.iter().find(|f| f.len() < 14) {
        bail!("a frame of {} bytes has no room for its link header (14 bytes)", f.len());
    }
    if let Some(ns) = &cli.netns {
        enter_netns(ns)?;
    }
    let (fd, mut addr) = open(&cli.dev)?;
    let mut sent = 0u64;
    let mut next = 0usize;
    while sent < cli.count {
        let n = (cli.count - sent).min(BATCH as u64) as usize;
        let mut iovs = Vec::with_capacity(n);
        for _ in 0..n {
            let f = &frames[next % frames.len()];
            next += 1;
            iovs.push(libc::iovec { iov_base: f.as_ptr() as *mut libc::c_void, iov_len: f.len() });
        }
        let mut msgs: Vec<libc::mmsghdr> = iovs
            .iter_mut()
            .map(|iov| {
                // SAFETY: all-zero is a valid msghdr.
                let mut h: libc::mmsghdr = unsafe { mem::zeroed() };
                h.msg_hdr.msg_name = (&mut addr as *mut libc::sockaddr_ll).cast();
                h.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_ll>() as u32;
                h.msg_hdr.msg_iov = iov;
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        let mut done = 0usize;
        while done < n {
            // SAFETY: `msgs[done..]` point at iovecs and frames that live
            // until the loop ends, and at `addr`.
            let r = unsafe {
                libc::sendmmsg(fd.as_raw_fd(), msgs[done..].as_mut_ptr(), (n - done) as u32, 0)
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::ENOBUFS) || e.kind() == io::ErrorKind::Interrupted {
                    // The device queue is full: let it drain.
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    continue;
                }
                return Err(e).with_context(|| format!("sending on {} after {} frames", cli.dev, sent + done as u64));
            }
            done += r as usize;
        }
        sent += n as u64;
    }
    println!("{sent}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_with_separators() {
        assert_eq!(parse_hex("02:00:0a.ff").expect("hex"), [2, 0, 0x0a, 0xff]);
        assert!(parse_hex("abc").is_err());
        assert!(parse_hex("zz").is_err());
    }
}
