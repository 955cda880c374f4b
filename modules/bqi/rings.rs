// SPDX-License-Identifier: GPL-2.0

//! The endpoint's shared area as the ABI lays it out: control words,
//! request snapshots, event posting. Everything read from the area is a
//! snapshot user space may change the next instant; callers validate it.

use core::sync::atomic::{AtomicU32, Ordering};
use kernel::{
    mm::shared_area::SharedArea,
    net::bqi::{self, Event, Layout, DESC_LEN},
    prelude::*,
};

/// An endpoint's area with its layout.
///
/// # Invariants
///
/// `area` is at least `layout.area_len()` bytes long, so every offset the
/// layout gives (control words, descriptors, buffers) lies within it.
pub(crate) struct Shared {
    pub(crate) area: SharedArea,
    pub(crate) layout: Layout,
}

impl Shared {
    /// Allocates a zeroed area for `layout` and writes its info block.
    pub(crate) fn new(layout: Layout, info: &bqi::Info) -> Result<Self> {
        let area = SharedArea::new(layout.area_len() as usize)?;
        if area.len() < layout.area_len() as usize {
            return Err(EINVAL);
        }
        // INVARIANT: The area is as long as the layout says (checked above).
        let shared = Shared { area, layout };
        let bytes = info.to_bytes();
        for (i, chunk) in bytes.chunks_exact(4).enumerate() {
            shared.word(i as u32 * 4).store(u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]), Ordering::Relaxed);
        }
        shared.word(bqi::FLAGS).store(bqi::FLAG_NEED_WAKEUP, Ordering::Relaxed);
        Ok(shared)
    }

    /// The control word or descriptor word at `offset`. Every offset
    /// passed here comes from the ABI's constants or from `layout`, within
    /// the area by the type invariant; the spare word is there so that a
    /// broken invariant is a wrong value, not a panic.
    fn word(&self, offset: u32) -> &AtomicU32 {
        static SPARE: AtomicU32 = AtomicU32::new(0);
        self.area.word(offset as usize).unwrap_or(&SPARE)
    }

    /// The request queue's producer position, as user space last stored it.
    pub(crate) fn req_head(&self) -> u32 {
        self.word(bqi::REQ_HEAD).load(Ordering::Acquire)
    }

    /// Publishes the kernel's request consumer position.
    pub(crate) fn set_req_tail(&self, tail: u32) {
        self.word(bqi::REQ_TAIL).store(tail, Ordering::Release)
    }

    /// The event queue's consumer position, as user space last stored it.
    pub(crate) fn evt_tail(&self) -> u32 {
        self.word(bqi::EVT_TAIL).load(Ordering::Acquire)
    }

    /// Publishes how many send descriptors are finished.
    pub(crate) fn set_sends_done(&self, done: u32) {
        self.word(bqi::SENDS_DONE).store(done, Ordering::Release)
    }

    /// Sets or clears flag bits.
    pub(crate) fn set_flag(&self, bit: u32, on: bool) {
        let w = self.word(bqi::FLAGS);
        if on {
            w.fetch_or(bit, Ordering::Relaxed);
        } else {
            w.fetch_and(!bit, Ordering::Relaxed);
        }
    }

    /// A snapshot of the request descriptor at queue `position`.
    pub(crate) fn request(&self, position: u32) -> [u8; DESC_LEN as usize] {
        let at = self.layout.request(position);
        let mut b = [0u8; DESC_LEN as usize];
        for (i, chunk) in b.chunks_exact_mut(4).enumerate() {
            chunk.copy_from_slice(&self.word(at + i as u32 * 4).load(Ordering::Relaxed).to_ne_bytes());
        }
        b
    }

    /// Writes `event` at queue `position`: the body first, then the `seq`
    /// word with release, which makes it visible to the application as a
    /// whole. The caller has checked that the slot is free.
    pub(crate) fn post(&self, position: u32, event: &Event) {
        let at = self.layout.event(position);
        let body = event.body();
        for (i, chunk) in body.chunks_exact(4).enumerate() {
            let v = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            self.word(at + 4 + i as u32 * 4).store(v, Ordering::Relaxed);
        }
        self.word(at).store(bqi::event_seq(position), Ordering::Release);
        self.word(bqi::EVT_HEAD).store(position.wrapping_add(1), Ordering::Relaxed);
    }
}
