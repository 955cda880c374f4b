//! What every transport offers the measurements: queue frames to send,
//! push them out, and hand over received frames.

use anyhow::Result;
use std::time::Duration;

/// One end of a link carrying whole Ethernet frames.
pub trait Link {
    /// Queues one frame (Ethernet header included) for sending; it may go
    /// out only at the next [`Link::flush`].
    fn send(&mut self, frame: &[u8]) -> Result<()>;

    /// Pushes queued frames out.
    fn flush(&mut self) -> Result<()>;

    /// Calls `f` for each frame available, waiting up to `timeout` for the
    /// first one; returns how many it handed over (0: none came in time).
    fn recv(&mut self, timeout: Duration, f: &mut dyn FnMut(&[u8])) -> Result<usize>;

    /// Largest frame this end can send and receive.
    fn max_frame(&self) -> usize;

    /// The transport's own counters, if it keeps any.
    fn counters(&self) -> Vec<(String, u64)> {
        Vec::new()
    }
}
