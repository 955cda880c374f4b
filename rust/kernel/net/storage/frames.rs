// SPDX-License-Identifier: GPL-2.0

//! Declustering: how the bytes of one block request map onto frames.
//!
//! A request larger than a frame's payload travels as several frames, each
//! carrying one fixed-size slice of the request (the last may be shorter).
//! Because every slice starts at a multiple of the payload size, a received
//! `(frag_offset, frag_len)` pair names exactly one frame, one run of
//! consecutive frames, or none, which is how responses are matched without
//! trusting the sender.

use crate::prelude::*;

/// Most frames one request may be declustered into; bounds [`FrameSet`].
pub const MAX_FRAMES: u32 = 1024;

const WORDS: usize = (MAX_FRAMES as usize).div_ceil(64);

/// How a request of `length` bytes is cut into frames of `payload` bytes.
///
/// # Invariants
///
/// `payload > 0`, and [`FramePlan::count`] is at most [`MAX_FRAMES`]. A plan
/// without data (flush, discard, write-zeroes, a read's request frame seen
/// from the sender) has one frame covering no bytes.
///
/// # Examples
///
/// ```
/// use kernel::net::storage::frames::FramePlan;
///
/// let plan = FramePlan::with_data(10 * 1024, 4096)?;
/// assert_eq!(plan.count(), 3);
/// assert_eq!(plan.frame(2), Some((8192, 2048)));
/// assert_eq!(plan.index_of(4096, 4096), Some(1));
/// assert_eq!(plan.index_of(4096, 2048), None);
/// assert_eq!(plan.span_of(4096, 6144), Some(1..3));
/// assert_eq!(plan.span_of(0, 4096), Some(0..1));
/// assert_eq!(plan.span_of(0, 6144), None);
/// assert_eq!(plan.span_of(0, 0), None);
/// assert_eq!(FramePlan::without_data().frame(0), Some((0, 0)));
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FramePlan {
    length: u32,
    payload: u32,
    data: bool,
}

impl FramePlan {
    /// A plan for `length` data bytes in frames of `payload` bytes; `EINVAL`
    /// if `length` is zero, `payload` is zero or more than [`MAX_FRAMES`]
    /// frames would be needed.
    pub fn with_data(length: u32, payload: u32) -> Result<Self> {
        if length == 0 || payload == 0 || length.div_ceil(payload) > MAX_FRAMES {
            return Err(EINVAL);
        }
        Ok(FramePlan { length, payload, data: true })
    }

    /// The plan of a request that carries no data: one empty frame.
    pub const fn without_data() -> Self {
        FramePlan { length: 0, payload: 1, data: false }
    }

    /// Number of frames.
    pub fn count(&self) -> u32 {
        if self.data {
            self.length.div_ceil(self.payload)
        } else {
            1
        }
    }

    /// Byte range `(offset, len)` of frame `index` within the request.
    pub fn frame(&self, index: u32) -> Option<(u32, u32)> {
        if index >= self.count() {
            return None;
        }
        if !self.data {
            return Some((0, 0));
        }
        let offset = index * self.payload;
        Some((offset, self.payload.min(self.length - offset)))
    }

    /// The frame that covers exactly `(offset, len)`, if any.
    pub fn index_of(&self, offset: u32, len: u32) -> Option<u32> {
        let index = if self.data {
            if offset % self.payload != 0 {
                return None;
            }
            offset / self.payload
        } else {
            0
        };
        (self.frame(index)? == (offset, len)).then_some(index)
    }

    /// The run of consecutive frames that together cover exactly
    /// `(offset, len)`, if any: how an acknowledgement of several fragments
    /// at once is matched. One frame's own range gives that frame alone.
    pub fn span_of(&self, offset: u32, len: u32) -> Option<core::ops::Range<u32>> {
        if !self.data || len == 0 {
            return self.index_of(offset, len).map(|i| i..i + 1);
        }
        let end = offset.checked_add(len)?;
        if offset % self.payload != 0 || end > self.length || (end % self.payload != 0 && end != self.length) {
            return None;
        }
        Some(offset / self.payload..end.div_ceil(self.payload))
    }
}

/// Which frames of a request have been answered.
///
/// # Examples
///
/// ```
/// use kernel::net::storage::frames::FrameSet;
///
/// let mut set = FrameSet::new();
/// assert!(set.insert(1000));
/// assert!(!set.insert(1000));
/// assert!(!set.insert(5000));
/// assert_eq!(set.count(), 1);
/// assert!(set.contains(1000));
/// assert!(set.remove(1000));
/// assert!(!set.remove(1000));
/// assert_eq!(set.count(), 0);
/// ```
///
/// # Invariants
///
/// `count` is the number of bits set in `bits`: kept as frames come and go,
/// since the ledger asks for it on every answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FrameSet {
    bits: [u64; WORDS],
    count: u32,
}

impl FrameSet {
    /// The empty set.
    pub const fn new() -> Self {
        FrameSet { bits: [0; WORDS], count: 0 }
    }

    /// Whether frame `index` is in the set.
    pub fn contains(&self, index: u32) -> bool {
        let i = index as usize;
        self.bits.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Adds frame `index`; false if it was already there or is out of range.
    pub fn insert(&mut self, index: u32) -> bool {
        let i = index as usize;
        match self.bits.get_mut(i / 64) {
            Some(w) if *w & (1 << (i % 64)) == 0 => {
                *w |= 1 << (i % 64);
                self.count += 1;
                true
            }
            _ => false,
        }
    }

    /// Takes frame `index` out; false if it was not there.
    pub fn remove(&mut self, index: u32) -> bool {
        let i = index as usize;
        match self.bits.get_mut(i / 64) {
            Some(w) if *w & (1 << (i % 64)) != 0 => {
                *w &= !(1 << (i % 64));
                self.count -= 1;
                true
            }
            _ => false,
        }
    }

    /// Number of frames in the set.
    pub fn count(&self) -> u32 {
        self.count
    }
}
