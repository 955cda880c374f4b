//! What a serving thread does when its link misbehaves. A daemon must ride
//! out an interface going down and up, being deleted and re-created, and
//! its MTU changing, rather than exit; only errors that say the program
//! itself is wrong end it.

use std::{io, time::Duration};

/// How long a thread waits before trying again while its link is down.
pub const LINK_DOWN_WAIT: Duration = Duration::from_millis(100);

/// How often a thread re-reads its interface (MTU, address, index) while
/// nothing goes wrong, so that a raised MTU or a re-created interface is
/// noticed even without an error.
pub const LINK_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// What to do after a socket call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// Nothing happened worth reporting (interrupted, timed out): go on.
    Retry,
    /// The device refused this one frame (queue full, filtered): drop it,
    /// the client retransmits.
    DropFrame,
    /// The link is down or the device is away: wait [`LINK_DOWN_WAIT`],
    /// check the interface (it may have been re-created) and go on.
    LinkDown,
    /// The interface the socket is bound to is gone: open a new socket on
    /// the interface of that name once it exists again.
    Reopen,
    /// The frame is larger than the link's MTU now: drop it, re-read the
    /// MTU and re-plan the frame size.
    Replan,
    /// The program is wrong (bad descriptor, bad address): stop.
    Fatal,
}

/// Classifies the error of a receive or send on the packet socket.
pub fn classify(err: &io::Error) -> Recovery {
    match err.raw_os_error() {
        Some(libc::EINTR | libc::EAGAIN | libc::ETIMEDOUT) => Recovery::Retry,
        Some(libc::ENOBUFS | libc::EPERM) => Recovery::DropFrame,
        Some(libc::ENETDOWN | libc::ENXIO | libc::ENETUNREACH | libc::EIO | libc::ENOMEM) => Recovery::LinkDown,
        Some(libc::ENODEV) => Recovery::Reopen,
        Some(libc::EMSGSIZE) => Recovery::Replan,
        Some(_) => Recovery::Fatal,
        // Not from the system (e.g. a timeout built by the standard library).
        None if matches!(err.kind(), io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
            Recovery::Retry
        }
        None => Recovery::Fatal,
    }
}

/// What the interface of a name is now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    /// Its index: a new one means the interface was deleted and re-created.
    pub ifindex: i32,
    /// Its MAC address, the only unicast destination served.
    pub mac: [u8; 6],
    /// Its MTU.
    pub mtu: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_errors_are_ridden_out_and_only_program_errors_stop() {
        let cases = [
            (libc::EINTR, Recovery::Retry),
            (libc::EAGAIN, Recovery::Retry),
            (libc::ENOBUFS, Recovery::DropFrame),
            (libc::ENETDOWN, Recovery::LinkDown),
            (libc::ENXIO, Recovery::LinkDown),
            (libc::ENODEV, Recovery::Reopen),
            (libc::EMSGSIZE, Recovery::Replan),
            (libc::EBADF, Recovery::Fatal),
            (libc::EFAULT, Recovery::Fatal),
            (libc::EINVAL, Recovery::Fatal),
        ];
        for (errno, want) in cases {
            assert_eq!(classify(&io::Error::from_raw_os_error(errno)), want, "errno {errno}");
        }
        assert_eq!(classify(&io::Error::from(io::ErrorKind::WouldBlock)), Recovery::Retry);
        assert_eq!(classify(&io::Error::other("?")), Recovery::Fatal);
    }
}
