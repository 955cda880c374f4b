// SPDX-License-Identifier: GPL-2.0

//! A session's request numbers and its finished window: the one piece of
//! state the queues of one attachment share.
//!
//! A server drops a late duplicate of a finished write because every frame
//! of a later request carries the client's finished window
//! ([`Finished`]), and a client issues a request that overlaps a write only
//! after that write finished. That argument holds across queues only if
//! the window a frame carries knows of every request finished before the
//! frame's own request was issued, whichever queue ran them: so an
//! attachment's queues number their requests from one sequence and finish
//! them in one window, and keep everything else (slots, FIFO, frames in
//! flight, their lock) to themselves.
//!
//! The window on the wire describes [`FINISHED_SPAN`] requests; a queue
//! sends no frame of a request beyond it ([`Finished::admits`]). Requests
//! beyond it may still be held, and may end unsent (failed on detach, or
//! for a short MTU), on any queue in any order, so the sequence records
//! finishing over a wider ring, sized for every request the attachment can
//! hold, and never loses one: its oldest unfinished request always moves
//! on once that request ends.
//!
//! A queue whose next request lies beyond the span waits for another
//! queue's oldest request; nothing of its own may come to wake it, so it
//! says so ([`Sequence::wait`]) and whoever finishes a request next wakes
//! it ([`Sequence::take_waiting`]); the sequence's lock orders the two.

use super::wire::{Finished, FINISHED_MASK_BITS, FINISHED_SPAN};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use crate::{
    prelude::*,
    sync::{Arc, SpinLockBh},
};

/// Bits per word of the ring.
const WORD: u32 = u64::BITS;

/// The numbers of one session.
///
/// # Invariants
///
/// `done.len() * 64` is `capacity`, a power of two of at least 256;
/// `next - below` (wrapping) is at most `capacity`; a bit is set only for a
/// finished request strictly between `below` and `next`, at index
/// `seq % capacity`.
struct Numbers {
    /// Oldest unfinished request, or `next` if none is unfinished.
    below: u32,
    /// The number the next request gets.
    next: u32,
    done: KVec<u64>,
    capacity: u32,
}

impl Numbers {
    fn bit(&self, seq: u32) -> (usize, u64) {
        let i = seq & (self.capacity - 1);
        ((i / WORD) as usize, 1u64 << (i % WORD))
    }

    fn is_done(&self, seq: u32) -> bool {
        let (w, b) = self.bit(seq);
        self.done.get(w).is_some_and(|v| v & b != 0)
    }

    fn set(&mut self, seq: u32, on: bool) {
        let (w, b) = self.bit(seq);
        if let Some(v) = self.done.get_mut(w) {
            if on {
                *v |= b;
            } else {
                *v &= !b;
            }
        }
    }

    /// 64 ring bits from index `at` (wrapping round the ring).
    fn word_at(&self, at: u32) -> u64 {
        let at = at & (self.capacity - 1);
        let (w, shift) = ((at / WORD) as usize, at % WORD);
        let words = self.done.len();
        let low = self.done.get(w).copied().unwrap_or(0) >> shift;
        if shift == 0 {
            return low;
        }
        let high = self.done.get((w + 1) % words).copied().unwrap_or(0) << (WORD - shift);
        low | high
    }
}

/// The request numbers and finished window of one session, shared by its
/// queues (each a [`super::ledger::Ledger`]).
///
/// Locking: a ledger takes this lock inside its own caller's lock (a
/// queue's), and nothing takes a queue's lock under it.
#[pin_data]
pub struct Sequence {
    #[pin]
    numbers: SpinLockBh<Numbers>,
    /// Bit `i`: queue `i` has requests waiting for an older one to finish.
    waiting: AtomicU64,
}

impl Sequence {
    /// A sequence whose first request is numbered `first` (a session starts
    /// at a random one), for at most `held` requests held at once over all
    /// the session's queues. `EINVAL` if that is beyond what a ring can
    /// record.
    pub fn new(first: u32, held: u32) -> Result<Arc<Self>> {
        let capacity = held.checked_add(FINISHED_SPAN).and_then(u32::checked_next_power_of_two).ok_or(EINVAL)?.max(256);
        if capacity > 1 << 20 {
            return Err(EINVAL);
        }
        let words = (capacity / WORD) as usize;
        let mut done = KVec::with_capacity(words, GFP_KERNEL)?;
        for _ in 0..words {
            done.push(0, GFP_KERNEL)?;
        }
        Arc::pin_init(
            pin_init!(Sequence {
                numbers <- {
                    let (name, key) = crate::sync::generic_lock_class!("net::storage::Sequence::numbers");
                    SpinLockBh::new(Numbers { below: first, next: first, done, capacity }, name, key)
                },
                waiting: AtomicU64::new(0),
            }),
            GFP_KERNEL,
        )
    }

    /// Numbers a new request and returns the number with the window as it
    /// is now; `None` if the ring could not record that request's finish
    /// (as many numbers as it holds are in use since the oldest unfinished
    /// request: with the finished window's span bound, only when requests
    /// beyond the span were held and ended out of order many times over;
    /// without it, whenever one request stays unfinished while that many
    /// newer ones are issued).
    pub fn issue(&self) -> Option<(u32, Finished)> {
        let mut n = self.numbers.lock();
        if n.next.wrapping_sub(n.below) >= n.capacity {
            return None;
        }
        let seq = n.next;
        n.next = seq.wrapping_add(1);
        Some((seq, Self::window_of(&n)))
    }

    /// Records that request `seq` finished (completed, failed or abandoned:
    /// it will never be sent or accepted again) and returns the window as
    /// it is now. A number not in use is ignored.
    pub fn finish(&self, seq: u32) -> Finished {
        let mut n = self.numbers.lock();
        let ahead = seq.wrapping_sub(n.below);
        let in_use = n.next.wrapping_sub(n.below);
        if ahead < in_use {
            if ahead == 0 {
                // Move past it and every finished request after it.
                n.below = n.below.wrapping_add(1);
                while n.below != n.next && n.is_done(n.below) {
                    let below = n.below;
                    n.set(below, false);
                    n.below = below.wrapping_add(1);
                }
            } else {
                n.set(seq, true);
            }
        }
        Self::window_of(&n)
    }

    /// Queue `queue` (below 64) has a request beyond the span and nothing
    /// else to send: it is to be woken when a request finishes. The
    /// queue must then take the window again ([`Sequence::window`]) and
    /// look once more, since a request may have finished between its
    /// last look and this call.
    ///
    /// No fence is needed: the sequence's lock orders the two sides. If
    /// the queue's second look takes the lock after a finish, it sees
    /// the finish; if before, this mark happens before that finish, and
    /// so before the finisher's [`Sequence::take_waiting`], which sees it.
    pub fn wait(&self, queue: u32) {
        if let Some(bit) = 1u64.checked_shl(queue) {
            self.waiting.fetch_or(bit, Relaxed);
        }
    }

    /// The queues waiting since the last call, to be woken by whoever
    /// just finished a request ([`Sequence::finish`], which took the lock
    /// before this): a bit per queue. A plain load when none waits, as on
    /// nearly every response.
    pub fn take_waiting(&self) -> u64 {
        if self.waiting.load(Relaxed) == 0 {
            return 0;
        }
        self.waiting.swap(0, Relaxed)
    }

    /// The window every request frame carries now.
    pub fn window(&self) -> Finished {
        Self::window_of(&self.numbers.lock())
    }

    fn window_of(n: &Numbers) -> Finished {
        // Bit `i` of the mask is request `below + 1 + i`; bits of numbers
        // not yet issued are clear (invariant).
        let start = n.below.wrapping_add(1);
        let low = u128::from(n.word_at(start));
        let high = u128::from(n.word_at(start.wrapping_add(WORD)));
        const _: () = assert!(FINISHED_MASK_BITS == 2 * WORD);
        Finished { below: n.below, mask: low | (high << WORD) }
    }
}
