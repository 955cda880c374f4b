// SPDX-License-Identifier: GPL-2.0

//! EBD, the Ethernet Block Device protocol, as a [`Protocol`] of the
//! storage personality: requests in frames of type `0x666`, answers in
//! `0x667`, one fixed header each ([`super::wire`], shared verbatim with
//! `ebd-server`).
//!
//! An attachment is a session of one export: its frames carry the export's
//! number, a random session id and the finished window, and an answer for
//! any other export or session is not ours.

use super::{
    protocol::{Answer, Command, InfoAnswer, Malformed, Operation, Parsed, Place, Protocol, RequestFrame, INFO_REQUEST_MAX},
    wire::{
        self, Direction, ExportInfo, Finished, Header, Opcode, Status, WireError, ETH_P_EBD_REQUEST,
        ETH_P_EBD_RESPONSE, FLAG_FUA, HEADER_LEN, MAX_REQUEST_LEN,
    },
};
use crate::{bindings, net::skb::SkBuff, prelude::*};

/// Tag of the discovery's [`Opcode::Info`] exchange: no queue's (queue
/// indices stay below [`super::MAX_QUEUES`]).
const INFO_TAG: u32 = u32::MAX;

/// EBD for one attachment: which export, and the session.
///
/// # Invariants
///
/// `session` is never zero.
pub struct Ebd {
    export: u16,
    session: u32,
}

impl Ebd {
    /// A new session of export `export`, with a random id.
    pub fn new(export: u16) -> Self {
        // SAFETY: `get_random_u32` has no precondition.
        let session = match unsafe { bindings::get_random_u32() } {
            0 => 1,
            n => n,
        };
        Ebd { export, session }
    }

    /// The export.
    pub fn export(&self) -> u16 {
        self.export
    }

    /// This attachment's session id (random, never zero), which every
    /// frame carries.
    pub fn session(&self) -> u32 {
        self.session
    }
}

/// The wire opcode of an operation.
pub fn opcode_of(op: Operation) -> Opcode {
    match op {
        Operation::Read => Opcode::Read,
        Operation::Write => Opcode::Write,
        Operation::Flush => Opcode::Flush,
        Operation::Discard => Opcode::Discard,
        Operation::WriteZeroes => Opcode::WriteZeroes,
    }
}

/// The operation of a wire opcode; `None` for [`Opcode::Info`].
pub fn operation_of(opcode: Opcode) -> Option<Operation> {
    Some(match opcode {
        Opcode::Read => Operation::Read,
        Opcode::Write => Operation::Write,
        Opcode::Flush => Operation::Flush,
        Opcode::Discard => Operation::Discard,
        Opcode::WriteZeroes => Operation::WriteZeroes,
        Opcode::Info => return None,
    })
}

/// The error a server's status stands for.
pub fn status_error(s: Status) -> Error {
    match s {
        Status::Ok | Status::IoError => EIO,
        Status::Invalid => EINVAL,
        Status::ReadOnly => EROFS,
        Status::OutOfRange => ENOSPC,
        Status::Unsupported => EOPNOTSUPP,
        Status::NoSuchExport => ENXIO,
        Status::Denied => EACCES,
    }
}

/// Why the wire format refused a frame, in the personality's terms.
pub fn malformed(e: WireError) -> Malformed {
    match e {
        WireError::Short => Malformed::Short,
        WireError::BadVersion => Malformed::Version,
        WireError::BadOpcode | WireError::BadFlags | WireError::BadStatus | WireError::BadReserved => Malformed::Field,
        WireError::BadRange => Malformed::Range,
        WireError::BadLength | WireError::NoSpace => Malformed::Length,
    }
}

/// The header of a request frame.
pub fn request_header(frame: &RequestFrame, export: u16, session: u32) -> Header {
    let c: &Command = &frame.command;
    Header {
        opcode: opcode_of(c.op),
        flags: if c.fua { FLAG_FUA } else { 0 },
        tag: frame.tag,
        seq: frame.seq,
        export,
        status: Status::Ok,
        offset: c.offset,
        length: c.length,
        frag_offset: frame.frag_offset,
        frag_len: frame.frag_len,
        session,
        finished: frame.finished,
    }
}

/// What a validated answer header says, for matching; `None` for an Info
/// answer.
pub fn answer_of(h: &Header) -> Option<Answer> {
    Some(Answer {
        tag: h.tag,
        seq: h.seq,
        seq_mask: u32::MAX,
        op: operation_of(h.opcode)?,
        place: Place::Within { offset: h.offset, length: h.length, frag_offset: h.frag_offset, frag_len: h.frag_len },
        outcome: match h.status {
            Status::Ok => Ok(()),
            s => Err(status_error(s)),
        },
        data_at: HEADER_LEN as u32,
    })
}

impl Protocol for Ebd {
    type Info = ExportInfo;

    const REQUEST_TYPE: u16 = ETH_P_EBD_REQUEST;
    const RESPONSE_TYPE: u16 = ETH_P_EBD_RESPONSE;
    const REQUEST_HEADER_LEN: u32 = HEADER_LEN as u32;
    const MAX_REQUEST: u32 = MAX_REQUEST_LEN;
    const READS_PER_FRAGMENT: bool = false;
    const SPAN_BOUND: bool = true;
    const ACKS_RUNS: bool = true;

    fn payload_per_frame(frame: u32) -> Option<u32> {
        wire::payload_per_frame(frame)
    }

    fn encode_request(&self, frame: &RequestFrame, out: &mut [u8]) -> Result {
        request_header(frame, self.export, self.session).encode(out).map_err(|_| EINVAL)
    }

    fn parse(&self, skb: &SkBuff) -> Parsed<ExportInfo> {
        let mut raw = [0u8; HEADER_LEN];
        if skb.copy_bits(0, &mut raw).is_err() {
            return Parsed::Malformed(Malformed::Short);
        }
        let h = match Header::parse_header(&raw, Direction::Response) {
            Ok(h) => h,
            Err(e) => return Parsed::Malformed(malformed(e)),
        };
        if h.payload_len(Direction::Response) > (skb.len() as usize).saturating_sub(HEADER_LEN) {
            return Parsed::Malformed(Malformed::Length);
        }
        if h.export != self.export || h.session != self.session {
            return Parsed::Foreign;
        }
        if h.opcode != Opcode::Info {
            return match answer_of(&h) {
                Some(answer) => Parsed::Answer(answer),
                None => Parsed::Malformed(Malformed::Field),
            };
        }
        if h.tag != INFO_TAG {
            return Parsed::Mismatch;
        }
        if h.status != Status::Ok {
            return Parsed::Info(InfoAnswer::Refused(status_error(h.status)));
        }
        let mut payload = [0u8; ExportInfo::LEN];
        match skb.copy_bits(HEADER_LEN as u32, &mut payload).ok().and_then(|()| ExportInfo::parse(&payload).ok()) {
            Some(info) => Parsed::Info(InfoAnswer::Accepted(info)),
            None => Parsed::Mismatch,
        }
    }

    fn info_request(&self, attempt: u32, finished: Finished, out: &mut [u8; INFO_REQUEST_MAX]) -> Result<usize> {
        let header = Header {
            opcode: Opcode::Info,
            flags: 0,
            tag: INFO_TAG,
            seq: attempt,
            export: self.export,
            status: Status::Ok,
            offset: 0,
            length: 0,
            frag_offset: 0,
            frag_len: 0,
            session: self.session,
            finished,
        };
        header.encode(out).map_err(|_| EINVAL)?;
        Ok(HEADER_LEN)
    }
}
