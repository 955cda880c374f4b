// SPDX-License-Identifier: GPL-2.0

//! Fixed-size descriptor rings, as a NIC has in host memory: the host posts
//! at the tail, the device takes from the head, and a full ring refuses.

use kernel::prelude::*;

/// A first-in first-out ring of at most `capacity` entries, allocated once.
pub(crate) struct Ring<T> {
    /// `KVVec`: a ring for every chunk of a large device memory is too big
    /// for one kmalloc.
    slots: KVVec<Option<T>>,
    head: usize,
    len: usize,
}

impl<T> Ring<T> {
    /// An empty ring of `capacity` entries.
    pub(crate) fn new(capacity: usize) -> Result<Self> {
        if capacity == 0 {
            return Err(EINVAL);
        }
        let mut slots = KVVec::with_capacity(capacity, GFP_KERNEL)?;
        for _ in 0..capacity {
            slots.push(None, GFP_KERNEL)?;
        }
        Ok(Ring { slots, head: 0, len: 0 })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn is_full(&self) -> bool {
        self.len == self.slots.len()
    }

    /// Free entries.
    pub(crate) fn room(&self) -> usize {
        self.slots.len() - self.len
    }

    /// Adds `v` at the tail; gives it back if the ring is full.
    pub(crate) fn push(&mut self, v: T) -> Result<(), T> {
        if self.is_full() {
            return Err(v);
        }
        let i = (self.head + self.len) % self.slots.len();
        self.slots[i] = Some(v);
        self.len += 1;
        Ok(())
    }

    /// Puts `v` back at the head (an entry taken that could not be served).
    pub(crate) fn push_front(&mut self, v: T) -> Result<(), T> {
        if self.is_full() {
            return Err(v);
        }
        self.head = (self.head + self.slots.len() - 1) % self.slots.len();
        self.slots[self.head] = Some(v);
        self.len += 1;
        Ok(())
    }

    /// Takes the entry at the head.
    pub(crate) fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let v = self.slots[self.head].take();
        self.head = (self.head + 1) % self.slots.len();
        self.len -= 1;
        v
    }
}

#[kunit_tests(pnic_ring)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_is_fifo_refuses_when_full_and_wraps() -> Result {
        let mut r = Ring::new(3)?;
        for round in 0..4u32 {
            for i in 0..3 {
                assert!(r.push(round * 10 + i).is_ok());
            }
            assert_eq!(r.push(99), Err(99));
            assert!(r.is_full() && r.room() == 0);
            assert_eq!(r.pop(), Some(round * 10));
            assert!(r.push_front(round * 10).is_ok());
            for i in 0..3 {
                assert_eq!(r.pop(), Some(round * 10 + i));
            }
            assert!(r.is_empty() && r.pop().is_none());
        }
        assert!(Ring::<u32>::new(0).is_err());
        Ok(())
    }
}
