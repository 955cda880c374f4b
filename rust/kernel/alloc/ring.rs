// SPDX-License-Identifier: GPL-2.0

//! A first-in first-out ring of fixed capacity, allocated once.
//!
//! For queues that must not allocate where they are used (softirq, under a
//! spinlock) and must refuse rather than grow when full: a NIC's descriptor
//! rings, the frames a router holds for a busy egress. Entries may also be
//! put back at the head, for one taken that could not be served.

use crate::{alloc::KVVec, prelude::*};

/// A FIFO of at most `capacity` entries.
///
/// # Invariants
///
/// `slots.len()` is the capacity, at least 1. The `len` entries starting
/// at `head` (wrapping around the end) are `Some`; every other slot is
/// `None`.
pub struct Ring<T> {
    /// `KVVec`: a large ring is too big for one kmalloc.
    slots: KVVec<Option<T>>,
    head: usize,
    len: usize,
}

impl<T> Ring<T> {
    /// An empty ring of `capacity` entries; `EINVAL` for 0. Allocates
    /// (`GFP_KERNEL`): process context.
    pub fn new(capacity: usize) -> Result<Self> {
        if capacity == 0 {
            return Err(EINVAL);
        }
        let mut slots = KVVec::with_capacity(capacity, GFP_KERNEL)?;
        for _ in 0..capacity {
            slots.push(None, GFP_KERNEL)?;
        }
        Ok(Ring { slots, head: 0, len: 0 })
    }

    /// Whether the ring holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the ring refuses the next push.
    pub fn is_full(&self) -> bool {
        self.len == self.slots.len()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Free entries.
    pub fn room(&self) -> usize {
        self.slots.len() - self.len
    }

    /// Adds `v` at the tail; gives it back if the ring is full.
    pub fn push(&mut self, v: T) -> Result<(), T> {
        if self.is_full() {
            return Err(v);
        }
        let i = (self.head + self.len) % self.slots.len();
        self.slots[i] = Some(v);
        self.len += 1;
        Ok(())
    }

    /// Puts `v` back at the head (an entry taken that could not be
    /// served); gives it back if the ring is full.
    pub fn push_front(&mut self, v: T) -> Result<(), T> {
        if self.is_full() {
            return Err(v);
        }
        self.head = (self.head + self.slots.len() - 1) % self.slots.len();
        self.slots[self.head] = Some(v);
        self.len += 1;
        Ok(())
    }

    /// Takes the entry at the head.
    pub fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let v = self.slots[self.head].take();
        self.head = (self.head + 1) % self.slots.len();
        self.len -= 1;
        v
    }
}
