// SPDX-License-Identifier: GPL-2.0

//! Frames that wait in the ingress NIC's memory for room in their egress
//! NIC. Seed 000 keeps a router's queues on its NICs: the host holds only
//! the order, here one FIFO of handles per ingress. The FIFO is bounded;
//! a frame that finds it full is dropped and counted, so nothing grows
//! without bound (the frames' memory is the NIC's, bounded as well).

use kernel::{
    alloc::ring::Ring,
    net::peer_dma::{CapRef, DevBuf},
};

/// Frames one ingress NIC may hold for busy egresses.
pub(crate) const BACKLOG: usize = 64;

/// A forwarded frame that waits to be sent: rewritten already, except for
/// a header copy that goes back with the send.
pub(crate) struct Held {
    pub(crate) buf: DevBuf,
    /// The rewritten header copy to write over the frame's start (its first
    /// `header_len` bytes), or none (in place: written already).
    pub(crate) header: [u8; crate::capable::COPIED],
    pub(crate) header_len: u8,
    pub(crate) egress: CapRef,
    /// Bus bytes spent on the frame before the send (header copy at
    /// receive, PIO reads and writes), for the counters.
    pub(crate) bus_before: u32,
}

/// The held frames of one ingress NIC, oldest first; allocated at attach,
/// so that holding a frame in softirq never allocates.
pub(crate) type Backlog = Ring<Held>;
