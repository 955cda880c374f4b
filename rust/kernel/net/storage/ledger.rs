// SPDX-License-Identifier: GPL-2.0

//! The storage personality's bookkeeping, free of any device: which
//! requests are queued, which frames are on the wire, which responses are
//! still expected, and what a timeout does.
//!
//! It is generic over the request handle `R` so that its state machine can
//! be tested with plain numbers (the `polynic_storage` KUnit suite) and used
//! with block requests by [`super::Personality`]. Nothing here sleeps or
//! allocates after [`Ledger::new`]; the caller serialises access.

use super::{
    frames::{FramePlan, FrameSet},
    protocol::{Answer, Operation, Place, RequestFrame},
    sequence::Sequence,
    wire::Finished,
};
use crate::{prelude::*, sync::Arc};

pub use super::protocol::Command;

/// Why a request was not admitted; the caller gets its request back.
pub enum Refused<R> {
    /// The queue is at its maximum length; try again after the queue-space
    /// callback.
    Full(R),
    /// The request can never be sent (bad id, size, opcode; personality
    /// detached): end it with the error.
    Invalid(R, Error),
}

/// A response the ledger matched to a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Matched {
    /// Frames `frames` of request `id` answered successfully: one frame for
    /// a read, whose `data` is the request byte range its payload fills;
    /// a run of consecutive fragments for a write acknowledged at once.
    Frames {
        /// The request.
        id: u32,
        /// The frames within the request, at least one.
        frames: core::ops::Range<u32>,
        /// Where the payload goes, for reads.
        data: Option<(u32, u32)>,
    },
    /// The server refused or failed request `id`.
    Failed {
        /// The request.
        id: u32,
        /// What the server said.
        err: Error,
    },
}

/// Why a response was not matched; each is counted and the frame dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unmatched {
    /// No request with that tag and sequence number is outstanding (late, or
    /// for an earlier use of the tag).
    Stale,
    /// The frame contradicts its request (operation, offset, length, or a
    /// fragment that is not one of the request's frames, or for a write a
    /// run of them, all sent).
    Mismatch,
    /// Every frame it answers was already answered.
    Duplicate,
}

/// What a request's timeout led to.
pub enum Expiry<R> {
    /// No such request is outstanding (already completed).
    NotFound,
    /// The request has not been fully sent yet (the device or the window
    /// was busy), was sent less than a timeout ago, or has an answer being
    /// placed ([`Ledger::begin_placing`]; then 1 ms): nothing was
    /// retransmitted and no retry counted. Wait this many more milliseconds.
    NotYet(u64),
    /// Its unanswered frames are queued again; this was retry `attempt`.
    Retry {
        /// 1 for the first retransmission.
        attempt: u32,
        /// The (doubled) timeout to wait for the retransmission's responses.
        wait_ms: u64,
    },
    /// Retries are exhausted; the request left the ledger.
    GiveUp(R),
}

/// A frame to build and transmit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameJob {
    /// The request it belongs to.
    pub id: u32,
    /// What the frame says (its tag is the request's id; the personality
    /// adds its queue).
    pub frame: RequestFrame,
    /// For writes, the request byte range the frame carries.
    pub data: Option<(u32, u32)>,
    /// What [`Ledger::unsend`] needs to take the frame back: its index in
    /// the request's plan (0 for a read sent as one frame), its window
    /// share, and its request's `sent_below` before and after it.
    index: u32,
    cost: u32,
    sent_below: (u32, u32),
}

struct Slot<R> {
    request: R,
    command: Command,
    /// The request's number in the session.
    seq: u32,
    plan: FramePlan,
    answered: FrameSet,
    /// Next frame index to consider sending.
    cursor: u32,
    /// Frames below this index have been sent at least once; only they can
    /// be acknowledged.
    sent_below: u32,
    /// Whether the slot's id is in the FIFO.
    queued: bool,
    /// Response frames this request holds of the window.
    charged: u32,
    /// When (caller's clock, milliseconds) its last frame went out.
    sent_at: u64,
    /// When its first frame first went out: round trips are timed from
    /// here.
    first_sent_at: u64,
    /// When it last made progress: its last frame went out or an answer
    /// came. [`Ledger::resend_overdue`] measures silence from here, so a
    /// long read whose answers keep coming is never presumed lost.
    active_at: u64,
    /// Timeouts its response timer let it retry.
    retries: u32,
    /// Early resends (see [`Ledger::resend_overdue`]).
    early: u32,
    /// Responses whose data is being placed into the request outside the
    /// caller's lock ([`Ledger::begin_placing`]): while any is, the
    /// request cannot leave the ledger, since the placing holds its pages.
    placing: u32,
    /// The request failed while data was being placed: the last placing
    /// to end removes it and reports this error.
    doomed: Option<Error>,
    /// When the device first refused one of its frames with no answer to
    /// it since ([`Ledger::unsend`]).
    refused_since: Option<u64>,
}

impl<R> Slot<R> {
    /// Marks frames `frames` answered and gives back the window share of
    /// those that were not already; returns that share, or `None` if every
    /// frame had been answered before.
    fn take_answers(&mut self, frames: core::ops::Range<u32>) -> Option<u32> {
        let fresh = frames.filter(|&i| self.answered.insert(i)).count() as u32;
        if fresh == 0 {
            return None;
        }
        let released = fresh.min(self.charged);
        self.charged -= released;
        Some(released)
    }
}

/// Fixed-capacity FIFO of request ids.
struct Fifo {
    ids: KVec<u32>,
    head: usize,
    len: usize,
}

impl Fifo {
    fn new(capacity: usize) -> Result<Self> {
        let mut ids = KVec::with_capacity(capacity, GFP_KERNEL)?;
        ids.resize(capacity, 0, GFP_KERNEL)?;
        Ok(Fifo { ids, head: 0, len: 0 })
    }

    fn push(&mut self, id: u32) -> bool {
        let cap = self.ids.len();
        if self.len == cap {
            return false;
        }
        self.ids[(self.head + self.len) % cap] = id;
        self.len += 1;
        true
    }

    fn push_front(&mut self, id: u32) -> bool {
        let cap = self.ids.len();
        if self.len == cap {
            return false;
        }
        self.head = (self.head + cap - 1) % cap;
        self.ids[self.head] = id;
        self.len += 1;
        true
    }

    /// The id at position `pos` from the front (`pos < len`).
    fn at(&self, pos: usize) -> u32 {
        self.ids[(self.head + pos) % self.ids.len()]
    }

    /// Removes the id at position `pos` from the front, keeping the order
    /// of the others.
    fn remove_at(&mut self, pos: usize) {
        if pos >= self.len {
            return;
        }
        let cap = self.ids.len();
        if pos == 0 {
            self.head = (self.head + 1) % cap;
        } else {
            for i in pos..self.len - 1 {
                self.ids[(self.head + i) % cap] = self.ids[(self.head + i + 1) % cap];
            }
        }
        self.len -= 1;
    }
}

/// A request's response timeout doubles with each retry up to this many times.
pub const MAX_BACKOFF_SHIFT: u32 = 4;

/// Early resends of one request ([`Ledger::resend_overdue`]); then only its
/// response timer resends it.
pub const MAX_EARLY_RESENDS: u32 = 3;

/// How long frames the device refuses are taken back and sent again
/// ([`Ledger::unsend`]) while their request hears nothing; then they count
/// as lost.
pub const MAX_REFUSED_MS: u64 = 1000;

/// Limits of a ledger.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Request ids run from 0 to `max_queue - 1`; also the maximum number of
    /// requests held (queued or awaiting responses).
    pub max_queue: u32,
    /// Payload bytes per frame (declustering unit).
    pub payload: u32,
    /// Most frames awaiting an answer at once (a read's data frames, a
    /// write's unacknowledged fragments); the pacing that keeps the
    /// personality from flooding the transmitter and the peer.
    pub window: u32,
    /// Retransmissions before a request fails.
    pub max_retries: u32,
    /// How the protocol frames requests.
    pub framing: Framing,
}

/// How a protocol cuts requests into frames and answers them (see
/// [`super::protocol::Protocol`]'s constants of the same names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Framing {
    /// Largest request, in bytes.
    pub max_request: u32,
    /// A read sends a request frame per fragment, not one for all.
    pub reads_per_fragment: bool,
    /// No frame of a request beyond the finished window's span is sent.
    pub span_bound: bool,
    /// A write's acknowledgement may cover a run of fragments.
    pub acks_runs: bool,
}

/// Requests held by one queue of the storage personality.
///
/// # Invariants
///
/// `slots.len() == limits.max_queue`; `used` is the number of occupied
/// slots; a slot is in `fifo` at most once, exactly when its `queued` flag is
/// set; `charged` is the sum of the slots' `charged`; every held request's
/// `seq` was issued by `sequence` and is unfinished there, and every
/// request that left the ledger is finished there; `window` was taken from
/// `sequence` after the newest held request was issued.
pub struct Ledger<R> {
    slots: KVec<Option<Slot<R>>>,
    fifo: Fifo,
    limits: Limits,
    used: u32,
    high_water: u32,
    charged: u32,
    /// Numbers requests and records their finish, for every ledger of the
    /// session.
    sequence: Arc<Sequence>,
    /// Which requests of the session have finished, as request frames tell
    /// the server: the sequence's window as of the last
    /// [`Ledger::refresh_window`], admission or removal here.
    window: Finished,
    refused_full: bool,
    /// The last [`Ledger::next_frame`] passed over a request beyond the
    /// window's span.
    held_back: bool,
    /// When (caller's clock) the server last answered any request.
    last_answer_at: u64,
}

impl<R> Ledger<R> {
    /// An empty ledger, the session's only one, whose first request gets
    /// sequence number `first_seq` (a session starts at a random one);
    /// `EINVAL` for zero limits.
    pub fn new(limits: Limits, first_seq: u32) -> Result<Self> {
        Self::sharing(limits, Sequence::new(first_seq, limits.max_queue)?)
    }

    /// An empty ledger, one of the session's queues, numbering its requests
    /// from `sequence` (made for every queue's `max_queue` together).
    pub fn sharing(limits: Limits, sequence: Arc<Sequence>) -> Result<Self> {
        if limits.max_queue == 0 || limits.payload == 0 || limits.window == 0 {
            return Err(EINVAL);
        }
        let n = limits.max_queue as usize;
        let mut slots = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            slots.push(None, GFP_KERNEL)?;
        }
        Ok(Ledger {
            slots,
            fifo: Fifo::new(n)?,
            limits,
            used: 0,
            high_water: 0,
            charged: 0,
            window: sequence.window(),
            sequence,
            refused_full: false,
            held_back: false,
            last_answer_at: 0,
        })
    }

    /// The limits it was made with.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Requests held now (queued or awaiting responses).
    pub fn len(&self) -> u32 {
        self.used
    }

    /// Whether no request is held.
    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    /// Most requests ever held at once.
    pub fn high_water(&self) -> u32 {
        self.high_water
    }

    /// Which requests of the session have finished (what request frames
    /// tell the server), as of the last refresh.
    pub fn finished(&self) -> Finished {
        self.window
    }

    /// Takes the session's window anew, with what the session's other
    /// queues finished since: due before frames are built, so that a
    /// request whose frames wait for older requests to finish
    /// ([`Ledger::next_frame`]) sees them finish wherever they were held.
    pub fn refresh_window(&mut self) {
        self.window = self.sequence.window();
    }

    /// Frames awaiting an answer (the part of the window in use).
    pub fn in_flight(&self) -> u32 {
        self.charged
    }

    /// Takes request `request` under id `id`, to be sent in order after
    /// those already queued.
    pub fn admit(&mut self, id: u32, request: R, command: Command) -> Result<(), Refused<R>> {
        let plan = match Self::plan(&command, &self.limits) {
            Ok(plan) => plan,
            Err(e) => return Err(Refused::Invalid(request, e)),
        };
        if self.used >= self.limits.max_queue {
            self.refused_full = true;
            return Err(Refused::Full(request));
        }
        let Some(entry) = self.slots.get_mut(id as usize) else {
            return Err(Refused::Invalid(request, EINVAL));
        };
        if entry.is_some() {
            return Err(Refused::Invalid(request, EBUSY));
        }
        let Some((seq, window)) = self.sequence.issue() else {
            self.refused_full = true;
            return Err(Refused::Full(request));
        };
        // Taken after this request's number: its frames tell the server of
        // every request finished before it was issued, on any queue.
        self.window = window;
        *entry = Some(Slot {
            request,
            command,
            seq,
            plan,
            answered: FrameSet::new(),
            cursor: 0,
            sent_below: 0,
            queued: true,
            charged: 0,
            sent_at: 0,
            first_sent_at: 0,
            active_at: 0,
            retries: 0,
            early: 0,
            placing: 0,
            doomed: None,
            refused_since: None,
        });
        // Cannot fail: the FIFO holds as many ids as there are slots and this
        // slot was not in it.
        let _ = self.fifo.push(id);
        self.used += 1;
        self.high_water = self.high_water.max(self.used);
        Ok(())
    }

    fn plan(command: &Command, limits: &Limits) -> Result<FramePlan> {
        if !command.op.moves_data() {
            return Ok(FramePlan::without_data());
        }
        if command.length > limits.framing.max_request {
            return Err(EINVAL);
        }
        FramePlan::with_data(command.length, limits.payload)
    }

    /// The request held under `id`.
    pub fn request(&self, id: u32) -> Option<&R> {
        Some(&self.slots.get(id as usize)?.as_ref()?.request)
    }

    /// The next frame to transmit, in FIFO order, if the window allows it.
    ///
    /// A write sends one data frame per unanswered fragment, and so does a
    /// read when the protocol asks for each fragment on its own
    /// ([`Framing::reads_per_fragment`]); every other request sends one
    /// frame. Each frame is charged to the window with the frames it asks
    /// to be answered (one per fragment for a read sent as one frame); an
    /// acknowledgement of a run of write fragments releases one per
    /// fragment.
    ///
    /// `now` (milliseconds, any monotonic clock) is when the frame goes
    /// out; [`Ledger::expire`] measures timeouts from the last frame sent.
    pub fn next_frame(&mut self, now: u64) -> Option<FrameJob> {
        self.held_back = false;
        let framing = self.limits.framing;
        let mut pos = 0;
        while pos < self.fifo.len {
            let id = self.fifo.at(pos);
            let window = self.limits.window;
            let in_flight = self.charged;
            let finished = self.window;
            let Some(slot) = self.slots.get_mut(id as usize).and_then(|s| s.as_mut()) else {
                // Unreachable by the invariant; stay robust anyway.
                self.fifo.remove_at(pos);
                continue;
            };
            // A request too far ahead of the oldest unfinished one waits: the
            // server could not be told about everything finished in between
            // (`FINISHED_SPAN`). Older requests behind it in the queue (a
            // retransmission of that oldest one, say) go first.
            if framing.span_bound && !finished.admits(slot.seq) {
                self.held_back = true;
                pos += 1;
                continue;
            }
            let count = slot.plan.count();
            let per_fragment = match slot.command.op {
                Operation::Write => true,
                Operation::Read => framing.reads_per_fragment,
                _ => false,
            };
            let (index, cost) = if per_fragment {
                let next = (slot.cursor..count).find(|&i| !slot.answered.contains(i));
                match next {
                    Some(i) => (i, 1),
                    None => {
                        slot.queued = false;
                        self.fifo.remove_at(pos);
                        continue;
                    }
                }
            } else {
                (0, count - slot.answered.count())
            };
            // An idle window always admits one frame, however large its cost.
            if in_flight > 0 && in_flight + cost > window {
                return None;
            }
            slot.charged += cost;
            let sent_below_was = slot.sent_below;
            if slot.sent_below == 0 {
                slot.first_sent_at = now;
            }
            slot.sent_at = now;
            slot.active_at = now;
            self.charged += cost;
            let (frag_offset, frag_len) = if per_fragment || slot.command.op != Operation::Read {
                slot.plan.frame(index).unwrap_or((0, 0))
            } else {
                // A read's one request frame carries no data; its fragment
                // tells the server the payload size of each answer.
                (0, slot.plan.frame(0).map_or(0, |(_, len)| len))
            };
            slot.cursor = index + 1;
            slot.sent_below = if per_fragment { slot.sent_below.max(index + 1) } else { count };
            let frame = RequestFrame { tag: id, seq: slot.seq, command: slot.command, frag_offset, frag_len, finished };
            if !per_fragment || slot.cursor >= count {
                slot.queued = false;
                self.fifo.remove_at(pos);
            }
            let write = slot.command.op == Operation::Write;
            return Some(FrameJob {
                id,
                frame,
                data: write.then_some((frag_offset, frag_len)),
                index,
                cost,
                sent_below: (sent_below_was, slot.sent_below),
            });
        }
        None
    }

    /// Matches a validated answer to an outstanding request. For a read,
    /// the caller then places the payload between
    /// [`Ledger::begin_placing`] and [`Ledger::end_placing`]; for anything
    /// else it calls [`Ledger::answer`].
    pub fn match_response(&self, a: &Answer) -> Result<Matched, Unmatched> {
        let id = a.tag;
        let slot = self
            .slots
            .get(id as usize)
            .and_then(|s| s.as_ref())
            .filter(|s| (s.seq ^ a.seq) & a.seq_mask == 0)
            .ok_or(Unmatched::Stale)?;
        let c = &slot.command;
        if a.op != c.op {
            return Err(Unmatched::Mismatch);
        }
        // The part of the request answered, relative to its start.
        let (frag_offset, frag_len) = match a.place {
            Place::Within { offset, length, frag_offset, frag_len } => {
                if offset != c.offset || length != c.length {
                    return Err(Unmatched::Mismatch);
                }
                (frag_offset, frag_len)
            }
            // Without data, nothing but the request's own empty part.
            Place::Absolute { len: 0, .. } if !c.op.moves_data() => (0, 0),
            Place::Absolute { at, len } => (Self::relative(c, at)?, len),
            Place::Start { .. } if !c.op.moves_data() => (0, 0),
            Place::Start { at } => {
                let rel = Self::relative(c, at)?;
                if rel % self.limits.payload != 0 {
                    return Err(Unmatched::Mismatch);
                }
                slot.plan.frame(rel / self.limits.payload).ok_or(Unmatched::Mismatch)?
            }
        };
        if let Err(err) = a.outcome {
            return Ok(Matched::Failed { id, err });
        }
        // A read's answer carries exactly one frame's data; a write's
        // acknowledgement may cover a run of its fragments, if the protocol
        // allows it.
        let frames = if c.op == Operation::Read || !self.limits.framing.acks_runs {
            slot.plan.index_of(frag_offset, frag_len).map(|i| i..i + 1)
        } else {
            slot.plan.span_of(frag_offset, frag_len)
        }
        .filter(|f| f.end <= slot.sent_below)
        .ok_or(Unmatched::Mismatch)?;
        if frames.clone().all(|i| slot.answered.contains(i)) {
            return Err(Unmatched::Duplicate);
        }
        let data = (c.op == Operation::Read).then_some((frag_offset, frag_len));
        Ok(Matched::Frames { id, frames, data })
    }

    /// Where `at` on the export lies within command `c`'s range.
    fn relative(c: &Command, at: u64) -> Result<u32, Unmatched> {
        at.checked_sub(c.offset).and_then(|r| u32::try_from(r).ok()).ok_or(Unmatched::Mismatch)
    }

    /// Narrows the payload per frame and the window to `payload` and
    /// `window` (what the server accepts, learnt at discovery). Only while
    /// no request is held (`EBUSY`); neither may grow nor become zero
    /// (`EINVAL`).
    pub fn narrow(&mut self, payload: u32, window: u32) -> Result {
        if self.used > 0 {
            return Err(EBUSY);
        }
        if payload == 0 || window == 0 || payload > self.limits.payload || window > self.limits.window {
            return Err(EINVAL);
        }
        self.limits.payload = payload;
        self.limits.window = window;
        Ok(())
    }

    /// Records that frames `frames` of request `id` were answered (those
    /// answered before are ignored); returns the request once every frame
    /// has been.
    pub fn answer(&mut self, id: u32, frames: core::ops::Range<u32>) -> Option<R> {
        let slot = self.slots.get_mut(id as usize)?.as_mut()?;
        let released = slot.take_answers(frames)?;
        self.charged = self.charged.saturating_sub(released);
        if slot.answered.count() == slot.plan.count() {
            return self.remove(id);
        }
        None
    }

    /// Starts placing a read response's data, frames `frames` of request
    /// `id` (as [`Ledger::match_response`] gave them), into the request
    /// outside the caller's lock, so that responses to one disk are copied
    /// on several CPUs at once rather than one after another under it.
    ///
    /// The frames count as answered from now on (a duplicate arriving
    /// during the copy is refused) and give back their share of the
    /// window, as [`Ledger::answer`] does. Until every placing begun has
    /// ended, the request cannot complete, fail or be taken, and its timer
    /// neither retries nor gives up. Returns the request, whose data the
    /// caller places; `None` if `id` holds no request, if the request has
    /// failed meanwhile (it ends when the placing under way does), or if
    /// the frames were all answered already.
    pub fn begin_placing(&mut self, id: u32, frames: core::ops::Range<u32>) -> Option<&R> {
        let slot = self.slots.get_mut(id as usize)?.as_mut()?;
        if slot.doomed.is_some() {
            return None;
        }
        let released = slot.take_answers(frames)?;
        self.charged = self.charged.saturating_sub(released);
        slot.placing += 1;
        Some(&slot.request)
    }

    /// Ends a placing begun by [`Ledger::begin_placing`] with the same
    /// `id` and `frames`; `placed` says whether the data is in place. If
    /// it is not, the frames are unanswered again: the request's next
    /// resend asks for them (and charges the window for them) again.
    /// Returns the request and how it ended once it is done: every frame
    /// answered, or failed meanwhile.
    pub fn end_placing(&mut self, id: u32, frames: core::ops::Range<u32>, placed: bool) -> Option<(R, Result)> {
        let slot = self.slots.get_mut(id as usize)?.as_mut()?;
        slot.placing = slot.placing.saturating_sub(1);
        if !placed {
            for i in frames {
                slot.answered.remove(i);
            }
        }
        if slot.placing > 0 {
            return None;
        }
        let outcome = match slot.doomed {
            Some(err) => Err(err),
            None if slot.answered.count() == slot.plan.count() => Ok(()),
            None => return None,
        };
        self.remove(id).map(|r| (r, outcome))
    }

    /// Request `id` failed (the server said so): removes and returns it.
    /// While its data is being placed, it is left to the last placing to
    /// end with `err` ([`Ledger::end_placing`]) and `None` is returned;
    /// unless every frame is answered already, when the failure came after
    /// the data and is ignored, as it would be once the request is gone.
    pub fn fail(&mut self, id: u32, err: Error) -> Option<R> {
        let slot = self.slots.get_mut(id as usize)?.as_mut()?;
        if slot.placing > 0 {
            if slot.answered.count() < slot.plan.count() {
                slot.doomed.get_or_insert(err);
            }
            return None;
        }
        self.remove(id)
    }

    /// An answer to request `id` arrived at `now` and was matched (called
    /// before [`Ledger::answer`] or [`Ledger::begin_placing`] records it). Returns
    /// a round-trip sample, from its first frame's sending, if it is the
    /// request's first answer and the request was never resent (Karn's
    /// rule: an answer to a resent request may be to either copy).
    pub fn progress(&mut self, id: u32, now: u64) -> Option<u64> {
        self.last_answer_at = self.last_answer_at.max(now);
        let slot = self.slots.get_mut(id as usize)?.as_mut()?;
        slot.active_at = slot.active_at.max(now);
        slot.refused_since = None;
        let first = slot.answered.count() == 0 && slot.retries == 0 && slot.early == 0;
        first.then(|| now.saturating_sub(slot.first_sent_at))
    }

    /// Once the server has answered nothing for `rto_ms` by `now`, queues
    /// again the unanswered frames of every request that was sent in full
    /// and has heard nothing for as long, up to [`MAX_EARLY_RESENDS`] times
    /// per request (the caller backs the timeout off after each resend).
    /// Returns how many requests it queued.
    ///
    /// While the server answers other requests, a silent one is more
    /// likely waiting its turn at the server than lost, and resending it
    /// would only add work: it is left to the response timer, as are
    /// flushes, whose answer waits for the server's disk. The case this is
    /// for is the one where the server falls silent with requests still
    /// held: the last requests of a burst, or of a queue the block layer is
    /// freezing, lost on the link.
    ///
    /// This is the personality's own loss recovery, far quicker than the
    /// driver's response timer ([`Ledger::expire`]), whose retry count it
    /// leaves alone. Each early resend restarts that timer's wait (it
    /// counts from the last frame sent), so a request fails at most
    /// [`MAX_EARLY_RESENDS`] timeouts later than without them.
    pub fn resend_overdue(&mut self, now: u64, rto_ms: u64) -> u32 {
        if now.saturating_sub(self.last_answer_at) < rto_ms {
            return 0;
        }
        let mut resent = 0;
        for id in 0..self.slots.len() {
            let Some(slot) = self.slots[id].as_mut() else { continue };
            if slot.queued
                || slot.placing > 0
                || slot.charged == 0
                || slot.early >= MAX_EARLY_RESENDS
                || slot.command.op == Operation::Flush
            {
                continue;
            }
            if now.saturating_sub(slot.active_at) < rto_ms {
                continue;
            }
            slot.early += 1;
            self.charged = self.charged.saturating_sub(slot.charged);
            slot.charged = 0;
            slot.cursor = 0;
            slot.queued = true;
            // Cannot fail: the FIFO holds every slot and this one was not in it.
            let _ = self.fifo.push(id as u32);
            resent += 1;
        }
        resent
    }

    /// Frame `job`, taken from [`Ledger::next_frame`], never left at
    /// `now`: the device refused it (`NET_XMIT_DROP`: a full receive
    /// backlog on veth, a qdisc's drop). Unlike a frame lost on the link,
    /// this is known at once, so the frame gives back its window share and
    /// goes to the front of the queue, to be sent again when the device
    /// has room, instead of waiting for a retransmission timeout. Take back
    /// the frames of one batch newest first, so that they go out again in
    /// order. Returns whether it was taken back.
    ///
    /// Not if the request has left meanwhile (its id may then hold
    /// another), and not once the device has refused the request's frames
    /// for [`MAX_REFUSED_MS`] with no answer to it: a device that refuses
    /// everything (a qdisc that drops every frame) would otherwise keep the
    /// request queued for ever. Its frame then counts as lost, and the
    /// response timer resends it and in the end fails the request.
    pub fn unsend(&mut self, job: &FrameJob, now: u64) -> bool {
        let Some(slot) = self.slots.get_mut(job.id as usize).and_then(|s| s.as_mut()) else {
            return false;
        };
        if slot.seq != job.frame.seq {
            return false;
        }
        let since = *slot.refused_since.get_or_insert(now);
        if now.saturating_sub(since) >= MAX_REFUSED_MS {
            return false;
        }
        let back = job.cost.min(slot.charged);
        slot.charged -= back;
        self.charged = self.charged.saturating_sub(back);
        // Only a frame that left can be answered: what this one marked
        // sent is unmarked, unless later frames marked more since.
        if slot.sent_below == job.sent_below.1 {
            slot.sent_below = job.sent_below.0;
        }
        slot.cursor = slot.cursor.min(job.index);
        if !slot.queued {
            slot.queued = true;
            // Cannot fail: the FIFO holds every slot and this one was not in it.
            let _ = self.fifo.push_front(job.id);
        }
        true
    }

    /// Whether the last [`Ledger::next_frame`] passed over a request that
    /// waits for an older one, perhaps another queue's, to finish (see
    /// [`Sequence::wait`]).
    pub fn held_back(&self) -> bool {
        self.held_back
    }

    /// Whether frames wait to be sent (the window or the device was full).
    pub fn has_queued(&self) -> bool {
        self.fifo.len > 0
    }

    /// Removes request `id` (completed, failed or aborted) and returns it.
    pub fn remove(&mut self, id: u32) -> Option<R> {
        let slot = self.slots.get_mut(id as usize)?.take()?;
        self.window = self.sequence.finish(slot.seq);
        self.charged = self.charged.saturating_sub(slot.charged);
        self.used = self.used.saturating_sub(1);
        if slot.queued {
            self.unqueue(id);
        }
        Some(slot.request)
    }

    fn unqueue(&mut self, id: u32) {
        let cap = self.fifo.ids.len();
        let (head, len) = (self.fifo.head, self.fifo.len);
        let mut kept = 0;
        for i in 0..len {
            let v = self.fifo.ids[(head + i) % cap];
            if v != id {
                self.fifo.ids[(head + kept) % cap] = v;
                kept += 1;
            }
        }
        self.fifo.len = kept;
    }

    /// Request `id`'s response timer expired at `now` (the clock of
    /// [`Ledger::next_frame`]); `base_timeout_ms` is how long a response may
    /// take after the last frame went out, doubled for every retry so far,
    /// up to `1 << MAX_BACKOFF_SHIFT` times. `is_it` confirms that the request held
    /// under `id` is the one whose timer fired (an id is reused as soon as
    /// its request completes).
    pub fn expire(&mut self, id: u32, now: u64, base_timeout_ms: u64, is_it: impl FnOnce(&R) -> bool) -> Expiry<R> {
        let max_retries = self.limits.max_retries;
        let backoff = |retries: u32| base_timeout_ms.saturating_mul(1 << retries.min(MAX_BACKOFF_SHIFT));
        let Some(slot) = self.slots.get_mut(id as usize).and_then(|s| s.as_mut()) else {
            return Expiry::NotFound;
        };
        if !is_it(&slot.request) {
            return Expiry::NotFound;
        }
        let timeout_ms = backoff(slot.retries);
        if slot.queued {
            return Expiry::NotYet(timeout_ms);
        }
        if slot.placing > 0 {
            // An answer is being placed right now: neither resend nor give
            // up before it is in; look again shortly.
            return Expiry::NotYet(1);
        }
        let waited = now.saturating_sub(slot.sent_at);
        if waited < timeout_ms {
            return Expiry::NotYet(timeout_ms - waited);
        }
        if slot.retries >= max_retries {
            return match self.remove(id) {
                Some(r) => Expiry::GiveUp(r),
                None => Expiry::NotFound,
            };
        }
        slot.retries += 1;
        let attempt = slot.retries;
        // Its unanswered frames go out again; what they were charged is
        // released, as the lost frames will never be answered.
        self.charged = self.charged.saturating_sub(slot.charged);
        slot.charged = 0;
        slot.cursor = 0;
        slot.queued = true;
        let _ = self.fifo.push(id);
        Expiry::Retry { attempt, wait_ms: backoff(attempt) }
    }

    /// Bytes of bookkeeping the ledger holds for its whole life (slots and
    /// FIFO), whatever the load: the memory a device pins while idle.
    pub fn memory_bytes(&self) -> usize {
        self.slots.capacity() * core::mem::size_of::<Option<Slot<R>>>()
            + self.fifo.ids.capacity() * core::mem::size_of::<u32>()
    }

    /// Removes and returns the oldest held request (lowest sequence number),
    /// for failing everything held with `err`, in the order the requests
    /// were issued. If the oldest is having data placed, it is marked to
    /// end with `err` when the placing ends and `None` is returned with
    /// requests still held: the caller waits for that placing
    /// ([`Ledger::is_empty`] tells) before taking more.
    pub fn take_oldest(&mut self, err: Error) -> Option<R> {
        let below = self.window.below;
        let (_, id) = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (s.seq.wrapping_sub(below), i)))
            .min()?;
        let slot = self.slots.get_mut(id)?.as_mut()?;
        if slot.placing > 0 {
            slot.doomed.get_or_insert(err);
            return None;
        }
        self.remove(id as u32)
    }

    /// If a request was refused for a full queue since the last call and
    /// there is room now, the number of free slots to report.
    pub fn take_space_signal(&mut self) -> Option<u32> {
        if self.refused_full && self.used < self.limits.max_queue {
            self.refused_full = false;
            return Some(self.limits.max_queue - self.used);
        }
        None
    }
}
