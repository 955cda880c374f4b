// SPDX-License-Identifier: GPL-2.0

//! What a link-layer block protocol gives the storage personality.
//!
//! The personality owns everything a protocol's frames have in common:
//! declustering a request into frames, pacing them by the device and a
//! window, matching answers to requests, placing a read's data,
//! retransmission and teardown. A protocol says what is particular to it:
//! the frame types it claims, how one request frame is written, how an
//! answer is read (and refused, when it is malformed or not ours), and how
//! the export is found. [`super::ebd::Ebd`] is EBD's; the AoE initiator has
//! its own in its module.
//!
//! Everything a protocol parses arrives from the network: it validates
//! every field and length before the personality uses any of them, and
//! says why it refused a frame ([`Malformed`]) so that the drop is counted.

use super::wire::Finished;
use crate::{net::skb::SkBuff, prelude::*};

/// What a block request asks of the export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Read the range; the answers carry the data.
    Read,
    /// Write the range; the request frames carry the data.
    Write,
    /// Make every acknowledged write stable.
    Flush,
    /// The range is no longer needed.
    Discard,
    /// The range must read back as zeroes.
    WriteZeroes,
}

impl Operation {
    /// Whether a request of this operation carries or fetches data, and so
    /// is declustered into frames of the payload size.
    pub const fn moves_data(self) -> bool {
        matches!(self, Self::Read | Self::Write)
    }
}

/// A block request in the personality's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Command {
    /// What it asks.
    pub op: Operation,
    /// Byte offset on the export.
    pub offset: u64,
    /// Bytes addressed (zero for a flush).
    pub length: u32,
    /// Forced unit access: durable before it is acknowledged.
    pub fua: bool,
}

/// One request frame, as the personality decided to send it; the protocol
/// writes it in its own format ([`Protocol::encode_request`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestFrame {
    /// The frame's tag: the request's id, with its queue's index above
    /// [`super::QUEUE_SHIFT`]. An answer must give it back.
    pub tag: u32,
    /// The request's number in the session.
    pub seq: u32,
    /// The request.
    pub command: Command,
    /// The part of the request this frame is about, relative to
    /// `command.offset`: the data it carries (a write), the data it asks
    /// for (a read, with [`Protocol::READS_PER_FRAGMENT`]), or for a read
    /// sent as one frame, `(0, n)` where `n` is the payload each answer
    /// carries. `(0, 0)` for a request without data.
    pub frag_offset: u32,
    /// See `frag_offset`.
    pub frag_len: u32,
    /// Which of the session's requests have finished (for protocols that
    /// tell the server, [`Protocol::SPAN_BOUND`]).
    pub finished: Finished,
}

/// Which part of its request an answer is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// The protocol echoes the request's whole range and names the part
    /// within it (EBD).
    Within {
        /// The request's offset on the export.
        offset: u64,
        /// The request's length.
        length: u32,
        /// The part's offset within the request.
        frag_offset: u32,
        /// The part's length.
        frag_len: u32,
    },
    /// The protocol names only the part's own range on the export.
    Absolute {
        /// Byte offset on the export.
        at: u64,
        /// Bytes.
        len: u32,
    },
    /// The protocol names only where on the export the part starts (AoE's
    /// LBA: a target need not echo the sector count): the part is the
    /// request's frame that starts there.
    Start {
        /// Byte offset on the export.
        at: u64,
    },
}

/// An answer to a request frame, as its protocol read it; the personality
/// matches it to the request its tag names, and refuses it unless it fits
/// that request exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The tag of the request frame it answers.
    pub tag: u32,
    /// The request's number in the session, as far as the answer tells it:
    /// only the bits set in `seq_mask` count (all of them for EBD, a few
    /// carried in the tag for AoE).
    pub seq: u32,
    /// See `seq`.
    pub seq_mask: u32,
    /// The operation it answers.
    pub op: Operation,
    /// The part of the request it answers.
    pub place: Place,
    /// `Err` if the server refused or failed the request.
    pub outcome: Result,
    /// Where a read's data starts in the frame (from the frame's network
    /// header, as received).
    pub data_at: u32,
}

/// Why a frame of a claimed type was refused before matching.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// Shorter than its header.
    Short,
    /// A protocol version this side does not speak.
    Version,
    /// An unknown command, flag, status or a reserved field set.
    Field,
    /// An impossible range.
    Range,
    /// A payload length the frame does not hold.
    Length,
}

/// What the export's discovery heard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InfoAnswer<I> {
    /// The export as the server describes it: discovery is over.
    Accepted(I),
    /// A step of a discovery that takes more than one exchange was
    /// answered, with what it told. Once the personality has taken it (from
    /// the bound server, or binding the sender when discovering) it hands
    /// it to [`Protocol::progress`], and the next request goes out at once.
    Progress(I),
    /// The server refused the export.
    Refused(Error),
}

/// A frame of one of the protocol's types, as its protocol read it.
pub enum Parsed<I> {
    /// An answer to a request frame.
    Answer(Answer),
    /// An answer to the discovery.
    Info(InfoAnswer<I>),
    /// Refused as malformed.
    Malformed(Malformed),
    /// Well formed, ours, but contradicts what was asked.
    Mismatch,
    /// Well formed but for another attachment (another export, session or
    /// target, or not an answer at all).
    Foreign,
}

/// Longest discovery request a protocol writes ([`Protocol::info_request`]).
pub const INFO_REQUEST_MAX: usize = 64;

/// A link-layer block protocol the storage personality carries.
///
/// One value is made per attachment and holds what names the export on the
/// wire (its number, session or shelf and slot), and what discovery has
/// learnt so far.
pub trait Protocol: Send + Sync + 'static {
    /// What discovery learns about the export.
    type Info: Copy + Send + Sync + Unpin + 'static;

    /// Frame type of request frames.
    const REQUEST_TYPE: u16;
    /// Frame type the personality claims on the device for answers (every
    /// other type is left to the stack).
    const RESPONSE_TYPE: u16;
    /// Bytes of protocol header before a request frame's data.
    const REQUEST_HEADER_LEN: u32;
    /// Largest request, in bytes, the protocol carries.
    const MAX_REQUEST: u32;
    /// Whether a read goes out as one request frame per fragment, each
    /// answered by that fragment's data (AoE), rather than as one request
    /// frame answered fragment by fragment (EBD).
    const READS_PER_FRAGMENT: bool;
    /// Whether request frames tell the server which requests finished
    /// ([`Finished`]), which bounds how far a request may run ahead of the
    /// oldest unfinished one ([`Finished::admits`]).
    const SPAN_BOUND: bool;
    /// Whether a write's acknowledgement may cover a run of its fragments
    /// at once; if not, each answers exactly one.
    const ACKS_RUNS: bool;

    /// Data bytes one frame carries when frames may be `frame` bytes (the
    /// MTU, or less); `None` if not even one sector fits.
    fn payload_per_frame(frame: u32) -> Option<u32>;

    /// Whether the protocol carries `op` at all; a request it does not is
    /// refused with `EOPNOTSUPP` when queued.
    fn carries(&self, _op: Operation) -> bool {
        true
    }

    /// Writes `frame`'s header into `out` (exactly
    /// [`Protocol::REQUEST_HEADER_LEN`] bytes; its data follows).
    fn encode_request(&self, frame: &RequestFrame, out: &mut [u8]) -> Result;

    /// Reads a frame of [`Protocol::RESPONSE_TYPE`] addressed to this host.
    fn parse(&self, skb: &SkBuff) -> Parsed<Self::Info>;

    /// A step of the discovery was answered and taken (see
    /// [`InfoAnswer::Progress`]): what the protocol learnt may now shape
    /// its next requests. Called under the personality's discovery lock,
    /// in softirq context: it must not sleep. Nothing a frame says may be
    /// kept before this, since the frame may yet be refused (not from the
    /// server, not addressed to this host).
    fn progress(&self, _step: &Self::Info) {}

    /// Writes the next discovery request into `out` and returns its length
    /// (at most [`INFO_REQUEST_MAX`]); `attempt` counts from 0.
    fn info_request(&self, attempt: u32, finished: Finished, out: &mut [u8; INFO_REQUEST_MAX]) -> Result<usize>;
}
