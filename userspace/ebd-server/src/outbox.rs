//! Response frames waiting to be sent, with a hard bound on their memory.
//!
//! A frame is a buffer the server built (headers, and the payload of a
//! response it copied) and, for reads served from a mapped export, a
//! [`Span`] of the export that the kernel copies into the frame itself:
//! such a payload never passes through the server's memory.
//!
//! A few request bytes can ask for a megabyte of responses (a read), and a
//! batch may hold dozens of such requests, so responses are not collected
//! for a whole batch: the outbox is sent (flushed) whenever the next frame
//! would take it past [`OUTBOX_FRAMES`] frames or [`OUTBOX_BYTES`] bytes of
//! buffers, and after a batch that did not need more than
//! [`RETAINED_BYTES`] (or when the server is idle) it gives back what it
//! holds beyond that, so a burst does not stay resident.

use crate::export::{Mapping, Span};
use std::{io::IoSliceMut, sync::Arc};

/// Most frames held before they are sent.
pub const OUTBOX_FRAMES: usize = 512;
/// Most bytes of frame buffers held (allocated) at any time. At least one
/// largest frame ([`crate::socket::MAX_FRAME`]) fits.
pub const OUTBOX_BYTES: usize = 4 << 20;
/// Buffer bytes kept for reuse once a burst is over.
pub const RETAINED_BYTES: usize = 1 << 20;

/// One frame's place in the outbox.
#[derive(Default)]
struct Slot {
    /// The buffer, kept for reuse.
    buf: Vec<u8>,
    /// How much of `buf` the frame uses.
    len: usize,
    /// The rest of the frame, in a mapped export.
    tail: Option<Span>,
}

/// One frame, as it goes to the socket: `head`, then `tail` if any.
#[derive(Clone, Copy)]
pub struct Frame<'o> {
    /// What the server built.
    pub head: &'o [u8],
    /// The payload, in a mapped export that the outbox keeps mapped.
    pub tail: Option<Span>,
}

impl Frame<'_> {
    /// Its length on the wire.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.head.len() + self.tail.map_or(0, |t| t.len())
    }

    /// Its bytes, the mapped payload included.
    #[cfg(test)]
    pub fn to_vec(self) -> Vec<u8> {
        let mut v = self.head.to_vec();
        if let Some(t) = self.tail {
            // SAFETY: Tests never shrink an export while it is served, so
            // every byte of the span is backed by the file.
            v.extend_from_slice(unsafe { t.read() });
        }
        v
    }
}

/// Reusable response frame buffers. Each buffer is sized to the largest
/// frame built in it so far, not to the largest frame the server could
/// build, and is reused without being cleared, so building a frame never
/// zero-fills a payload that a read is about to overwrite anyway.
///
/// Type invariant: every [`Span`] of a frame lies in a mapping of
/// `mappings`, which keeps it mapped until the frames are cleared.
#[derive(Default)]
pub struct Outbox {
    /// Frame buffers, each with the frame it holds now.
    frames: Vec<Slot>,
    /// The mappings the frames' tails lie in.
    mappings: Vec<Arc<Mapping>>,
    /// Frames produced since the last [`Outbox::clear`].
    len: usize,
    /// Sum of the buffers' capacities.
    allocated: usize,
    /// Capacity of the buffers `[0, len)`.
    in_use: usize,
    /// Largest `in_use` since the last [`Outbox::settle`].
    peak: usize,
}

impl Outbox {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a frame of `size` bytes can be added within the bounds.
    pub fn fits(&self, size: usize) -> bool {
        if self.len >= OUTBOX_FRAMES {
            return false;
        }
        let growth = match self.frames.get(self.len) {
            Some(f) => size.saturating_sub(f.buf.capacity()),
            None => size,
        };
        self.allocated + growth <= OUTBOX_BYTES
    }

    /// Makes a frame of `size` bytes fit in an outbox that holds no frames
    /// (`len == 0`) by giving back buffers kept for reuse.
    pub fn make_room(&mut self, size: usize) {
        if self.len == 0 && !self.fits(size) {
            self.release_from(0);
        }
    }

    /// Appends a frame of `size` bytes, contents unspecified. The caller
    /// checked [`Outbox::fits`]; the bound holds regardless, since the
    /// buffer grows by exactly what the frame needs.
    pub fn push(&mut self, size: usize) -> &mut [u8] {
        if self.len == self.frames.len() {
            self.frames.push(Slot::default());
        }
        let slot = &mut self.frames[self.len];
        let f = &mut slot.buf;
        let before = f.capacity();
        if f.len() < size {
            f.reserve_exact(size - f.len());
            f.resize(size, 0);
        }
        slot.len = size;
        slot.tail = None;
        self.allocated += f.capacity() - before;
        self.in_use += f.capacity();
        self.peak = self.peak.max(self.in_use);
        self.len += 1;
        &mut f[..size]
    }

    /// Appends a frame of `head` bytes, contents unspecified, followed by
    /// `len` bytes of `mapping` from `offset` on; `None` (nothing appended)
    /// if those lie outside the mapping. As for [`Outbox::push`], the
    /// caller checked that `head` [fits](Outbox::fits).
    pub fn push_mapped(&mut self, head: usize, mapping: &Arc<Mapping>, offset: u64, len: usize) -> Option<&mut [u8]> {
        let tail = mapping.span(offset, len)?;
        if !self.mappings.last().is_some_and(|m| Arc::ptr_eq(m, mapping)) {
            self.mappings.push(mapping.clone());
        }
        let at = self.len;
        self.push(head);
        self.frames[at].tail = Some(tail);
        Some(&mut self.frames[at].buf[..head])
    }

    /// The frames produced since the last [`Outbox::clear`].
    pub fn frames(&self) -> impl ExactSizeIterator<Item = Frame<'_>> {
        self.frames[..self.len].iter().map(|s| Frame { head: &s.buf[..s.len], tail: s.tail })
    }

    /// How many frames were produced since the last [`Outbox::clear`].
    pub fn count(&self) -> usize {
        self.len
    }

    /// The bytes from `at` on of every frame from `first` on: the payloads
    /// of a run of frames, to be filled by one vectored read.
    pub fn tails_from(&mut self, first: usize, at: usize) -> Vec<IoSliceMut<'_>> {
        self.frames[first..self.len].iter_mut().map(|s| IoSliceMut::new(&mut s.buf[at..s.len])).collect()
    }

    /// Takes back every frame from the `first` on; returns how many.
    pub fn retract_to(&mut self, first: usize) -> usize {
        let n = self.len.saturating_sub(first);
        for s in &self.frames[first..self.len] {
            self.in_use -= s.buf.capacity();
        }
        self.len -= n;
        n
    }

    /// Forgets the frames (they were sent), keeping their memory, and lets
    /// go of the mappings their payloads were in.
    pub fn clear(&mut self) {
        self.len = 0;
        self.in_use = 0;
        self.mappings.clear();
    }

    /// Called after a batch (and when idle): unless the batch needed more
    /// than [`RETAINED_BYTES`] of buffers (a burst in progress, whose
    /// buffers the next batch is likely to need again), gives back the
    /// buffers beyond that. Call with the outbox cleared.
    pub fn settle(&mut self) {
        let burst = self.peak > RETAINED_BYTES;
        self.peak = self.in_use;
        if burst || self.allocated <= RETAINED_BYTES {
            return;
        }
        let mut kept = 0;
        let mut keep = 0;
        for s in &self.frames {
            if kept + s.buf.capacity() > RETAINED_BYTES {
                break;
            }
            kept += s.buf.capacity();
            keep += 1;
        }
        self.release_from(keep.max(self.len));
        return_freed_memory();
    }

    /// Frees the buffers from `keep` on (none of them holds a frame).
    fn release_from(&mut self, keep: usize) {
        for s in &self.frames[keep..] {
            self.allocated -= s.buf.capacity();
        }
        self.frames.truncate(keep);
        self.frames.shrink_to_fit();
    }

    /// Bytes of frame buffers held.
    #[cfg(test)]
    pub fn allocated(&self) -> usize {
        self.allocated
    }

    /// Everything the outbox holds: buffers and their bookkeeping.
    #[cfg(test)]
    pub fn footprint(&self) -> usize {
        self.allocated + self.frames.capacity() * std::mem::size_of::<Slot>()
    }
}

/// Lets the allocator hand freed pages back to the system: glibc keeps
/// freed small blocks in its arenas (a serving thread has its own), where a
/// burst's buffers would stay resident.
fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socket::MAX_FRAME;
    use std::mem::size_of;

    #[test]
    fn buffers_are_sized_to_the_frames_built() {
        let mut o = Outbox::new();
        o.push(78);
        o.push(1102);
        assert_eq!(o.allocated(), 78 + 1102);
        o.clear();
        // Reused: a smaller frame takes no more memory, a larger one grows
        // its buffer by what it needs.
        o.push(60);
        o.push(2000);
        assert_eq!(o.allocated(), 78 + 2000);
        assert_eq!(o.frames().map(|f| f.len()).collect::<Vec<_>>(), [60, 2000]);
    }

    #[test]
    fn the_bounds_hold_and_a_largest_frame_always_fits_an_empty_outbox() {
        let mut o = Outbox::new();
        let mut n = 0;
        while o.fits(MAX_FRAME) {
            o.push(MAX_FRAME);
            n += 1;
        }
        assert!(n <= OUTBOX_FRAMES && o.allocated() <= OUTBOX_BYTES);
        assert_eq!(n, (OUTBOX_BYTES / MAX_FRAME).min(OUTBOX_FRAMES));
        o.clear();
        let mut small = 0;
        while o.fits(64) {
            o.push(64);
            small += 1;
        }
        assert_eq!(small, OUTBOX_FRAMES, "small frames are bounded by count");
        o.clear();
        o.make_room(MAX_FRAME);
        assert!(o.fits(MAX_FRAME));
    }

    #[test]
    fn a_burst_is_given_back_once_it_is_over() {
        let mut o = Outbox::new();
        for _ in 0..400 {
            o.push(MAX_FRAME);
        }
        o.clear();
        o.settle();
        assert!(o.allocated() > RETAINED_BYTES, "kept while the burst goes on");
        o.push(100);
        o.clear();
        o.settle();
        assert!(o.allocated() <= RETAINED_BYTES, "{} bytes kept after the burst", o.allocated());
        assert!(o.footprint() <= RETAINED_BYTES + OUTBOX_FRAMES * size_of::<Slot>());
    }
}
