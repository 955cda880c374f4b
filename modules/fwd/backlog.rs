// SPDX-License-Identifier: GPL-2.0

//! Frames that wait in the ingress NIC's memory for room in their egress
//! NIC. Seed 000 keeps a router's queues on its NICs: the host holds only
//! the order, here one FIFO of handles per ingress. The FIFO is bounded;
//! a frame that finds it full is dropped and counted, so nothing grows
//! without bound (the frames' memory is the NIC's, bounded as well).

use kernel::{
    net::peer_dma::{CapRef, DevBuf},
    prelude::*,
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

/// The held frames of one ingress NIC.
pub(crate) type Backlog = Fifo<Held>;

/// A FIFO of fixed capacity, allocated at attach so that holding a frame in
/// softirq never allocates.
///
/// # Invariants
///
/// `slots.len()` is the capacity; the `len` entries from `head` (wrapping)
/// are `Some`, the others `None`.
pub(crate) struct Fifo<T> {
    slots: KVec<Option<T>>,
    head: usize,
    len: usize,
}

impl<T> Fifo<T> {
    /// An empty FIFO of `capacity` (at least 1) entries.
    pub(crate) fn new(capacity: usize) -> Result<Self> {
        if capacity == 0 {
            return Err(EINVAL);
        }
        let mut slots = KVec::with_capacity(capacity, GFP_KERNEL)?;
        for _ in 0..capacity {
            slots.push(None, GFP_KERNEL)?;
        }
        Ok(Fifo { slots, head: 0, len: 0 })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Appends `item`; gives it back if full.
    pub(crate) fn push_back(&mut self, item: T) -> Result<(), T> {
        let cap = self.slots.len();
        if self.len == cap {
            return Err(item);
        }
        self.slots[(self.head + self.len) % cap] = Some(item);
        self.len += 1;
        Ok(())
    }

    /// Puts `item` first (a frame whose send was refused again); gives it
    /// back if full.
    pub(crate) fn push_front(&mut self, item: T) -> Result<(), T> {
        let cap = self.slots.len();
        if self.len == cap {
            return Err(item);
        }
        self.head = (self.head + cap - 1) % cap;
        self.slots[self.head] = Some(item);
        self.len += 1;
        Ok(())
    }

    /// Takes the oldest entry.
    pub(crate) fn pop_front(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let item = self.slots[self.head].take();
        self.head = (self.head + 1) % self.slots.len();
        self.len -= 1;
        item
    }
}

#[kunit_tests(fwd_backlog)]
mod tests {
    use super::*;

    #[test]
    fn entries_leave_in_order_and_a_full_fifo_refuses() -> Result {
        let mut f = Fifo::new(3)?;
        // Wrap around the end twice.
        for round in 0..3u32 {
            for i in 0..3 {
                assert_eq!(f.push_back(round * 10 + i), Ok(()));
            }
            assert_eq!(f.push_back(99), Err(99));
            assert_eq!(f.push_front(98), Err(98));
            assert_eq!(f.len(), 3);
            for i in 0..3 {
                assert_eq!(f.pop_front(), Some(round * 10 + i));
            }
            assert!(f.is_empty());
            assert_eq!(f.pop_front(), None);
        }
        Ok(())
    }

    #[test]
    fn a_refused_entry_goes_back_first() -> Result {
        let mut f = Fifo::new(4)?;
        for i in 1..=3u32 {
            assert_eq!(f.push_back(i), Ok(()));
        }
        let first = f.pop_front();
        assert_eq!(first, Some(1));
        assert_eq!(f.push_back(4), Ok(()));
        assert_eq!(f.push_front(1), Ok(()));
        for want in 1..=4u32 {
            assert_eq!(f.pop_front(), Some(want));
        }
        assert!(Fifo::<u32>::new(0).is_err());
        Ok(())
    }
}
