// SPDX-License-Identifier: GPL-2.0

//! ATA over Ethernet, revision 1, as a protocol of the storage personality:
//! what an AoE initiator has to write, since the personality does the
//! declustering, pacing, matching, placing and retransmission.
//!
//! Every request frame is one ATA command (READ or WRITE SECTORS EXT of at
//! most one frame's sectors, or FLUSH CACHE) to one target, the shelf and
//! slot of this attachment (configured, or the first target to answer a
//! Query Config sent to every shelf and slot). A target echoes the tag and the LBA but not the
//! sector count, so an answer names its fragment by where it starts
//! ([`Place::Start`]: this initiator needs a target that echoes the LBA, as
//! vblade does) and its request by the tag, which carries the request's
//! queue and slot and the low 16 bits of its sequence number (a late answer
//! to an earlier use of a slot is told apart). Discovery is two exchanges: Query Config (which
//! binds the target's address and tells its buffer count and sectors per
//! command), then IDENTIFY DEVICE (its capacity).

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use kernel::{
    net::{
        aoe::{
            self as wire, AtaRequest, Body, ConfigQuery, ErrorCode, Response, WireError, ATA_HEADER_LEN,
            AFLAG_EXTENDED, AFLAG_WRITE, ATA_ERROR_IDNF, CONFIG_HEADER_LEN, ETH_P_AOE, SECTOR_SIZE,
        },
        skb::SkBuff,
        storage::{
            protocol::{
                Answer, Command, InfoAnswer, Malformed, Operation, Parsed, Place, RequestFrame, INFO_REQUEST_MAX,
            },
            wire::Finished,
            Protocol, MAX_QUEUES, QUEUE_SHIFT,
        },
    },
    prelude::*,
};

/// Tag bit of the discovery's exchanges, whose tags carry nothing else but
/// the attempt in the low 16 bits. (Bit 31 is left alone: the Linux driver
/// keeps it for user-space tools.)
const DISCOVERY_TAG: u32 = 1 << 30;

/// A data frame's tag on the wire: the request's slot in its queue in bits
/// 0-7, the queue in bits 8-13, the low 16 bits of the request's sequence
/// number in bits 14-29. (The personality's own tag has the queue above
/// [`QUEUE_SHIFT`]: the wire packs it tighter to leave the sequence number
/// 16 bits.)
const SLOT_BITS: u32 = 8;
const QUEUE_BITS: u32 = 6;
const SEQ_SHIFT: u32 = SLOT_BITS + QUEUE_BITS;
const SEQ_MASK: u32 = 0xffff;
const _: () = assert!(MAX_QUEUES <= 1 << QUEUE_BITS && (SEQ_MASK << SEQ_SHIFT) < DISCOVERY_TAG);

/// Most requests a queue may hold: their slots fit the tag's slot bits.
pub(crate) const MAX_QUEUE_DEPTH: u32 = 1 << SLOT_BITS;

/// The wire tag of the personality's `tag` for a request numbered `seq`.
fn wire_tag(tag: u32, seq: u32) -> Result<u32> {
    let (queue, slot) = (tag >> QUEUE_SHIFT, tag & ((1 << QUEUE_SHIFT) - 1));
    if slot >= MAX_QUEUE_DEPTH || queue >= 1 << QUEUE_BITS {
        return Err(EINVAL);
    }
    Ok(slot | queue << SLOT_BITS | (seq & SEQ_MASK) << SEQ_SHIFT)
}

/// The personality's tag and the sequence bits of a data frame's wire tag.
fn personality_tag(wire: u32) -> (u32, u32) {
    let slot = wire & (MAX_QUEUE_DEPTH - 1);
    let queue = (wire >> SLOT_BITS) & ((1 << QUEUE_BITS) - 1);
    (queue << QUEUE_SHIFT | slot, (wire >> SEQ_SHIFT) & SEQ_MASK)
}

/// What discovery learnt about the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    /// Its shelf.
    pub(crate) shelf: u16,
    /// Its slot.
    pub(crate) slot: u8,
    /// Requests the target can hold at once (its receive buffers).
    pub(crate) buffer_count: u16,
    /// Its firmware version.
    pub(crate) firmware: u16,
    /// Most sectors one command may carry, as the target says (0 if it
    /// does not: [`wire::DEFAULT_SECTORS`]).
    pub(crate) sector_count: u8,
    /// Capacity in sectors (0 until IDENTIFY has told it).
    pub(crate) sectors: u64,
}

impl Target {
    /// Most data bytes per frame to this target over a link of `mtu`.
    pub(crate) fn payload(&self, mtu: u32) -> u32 {
        wire::max_sectors(self.sector_count, mtu) * SECTOR_SIZE
    }
}

/// Query Config's answer, packed: `KNOWN`, then buffer count, firmware and
/// sector count.
const KNOWN: u64 = 1 << 63;

fn pack(buffer_count: u16, firmware: u16, sector_count: u8) -> u64 {
    KNOWN | u64::from(buffer_count) << 32 | u64::from(firmware) << 16 | u64::from(sector_count)
}

/// The target's shelf and slot, packed: `KNOWN_ADDRESS`, shelf, slot.
const KNOWN_ADDRESS: u32 = 1 << 31;

fn pack_address(shelf: u16, slot: u8) -> u32 {
    KNOWN_ADDRESS | u32::from(shelf) << 8 | u32::from(slot)
}

/// AoE to one target.
pub(crate) struct Aoe {
    /// The target's shelf and slot (`pack_address`), or 0 until the first
    /// target whose Query Config answer the personality takes is bound;
    /// never changed once set.
    address: AtomicU32,
    /// What the bound target's Query Config answer said (`0` until the
    /// personality took one), for the IDENTIFY step and the [`Target`] it
    /// completes.
    config: AtomicU64,
}

impl Aoe {
    /// AoE to target `shelf`.`slot`, or (`None`) to the first target that
    /// answers discovery; `EINVAL` for the broadcast shelf or slot.
    pub(crate) fn new(target: Option<(u16, u8)>) -> Result<Self> {
        let address = match target {
            Some((shelf, slot)) if shelf == wire::MAJOR_ANY || slot == wire::MINOR_ANY => return Err(EINVAL),
            Some((shelf, slot)) => pack_address(shelf, slot),
            None => 0,
        };
        Ok(Aoe { address: AtomicU32::new(address), config: AtomicU64::new(0) })
    }

    /// The target's shelf and slot, once known.
    pub(crate) fn address(&self) -> Option<(u16, u8)> {
        let v = self.address.load(Relaxed);
        (v & KNOWN_ADDRESS != 0).then(|| ((v >> 8) as u16, v as u8))
    }

    /// Whether `shelf`.`slot` is this attachment's target, or (while none
    /// is bound, for a Query Config answer) may become it.
    fn may_be_target(&self, shelf: u16, slot: u8, config_answer: bool) -> bool {
        match self.address.load(Relaxed) {
            0 => config_answer,
            bound => bound == pack_address(shelf, slot),
        }
    }

    fn config(&self) -> Option<(u16, u16, u8)> {
        let v = self.config.load(Relaxed);
        (v & KNOWN != 0).then(|| ((v >> 32) as u16, (v >> 16) as u16, v as u8))
    }

    /// The answer to a discovery exchange (its tag is one).
    fn discovery(&self, r: &Response, skb: &SkBuff) -> Parsed<Target> {
        if r.common.is_error() {
            return Parsed::Info(InfoAnswer::Refused(aoe_error(r.common.error)));
        }
        let (shelf, slot) = (r.common.major, r.common.minor);
        match r.body {
            // Nothing is kept before the personality takes the answer
            // (`progress`).
            Body::Config(c) => Parsed::Info(InfoAnswer::Progress(Target {
                shelf,
                slot,
                buffer_count: c.buffer_count,
                firmware: c.firmware,
                sector_count: c.sector_count,
                sectors: 0,
            })),
            // IDENTIFY is sent without argument flags; the target echoes
            // them.
            Body::Ata(a) if a.aflags != 0 => Parsed::Mismatch,
            Body::Ata(a) if a.failed() => Parsed::Info(InfoAnswer::Refused(EIO)),
            Body::Ata(_) => {
                let mut block = [0u8; SECTOR_SIZE as usize];
                if skb.copy_bits(ATA_HEADER_LEN as u32, &mut block).is_err() {
                    return Parsed::Malformed(Malformed::Length);
                }
                match (self.config(), wire::identify_sectors(&block)) {
                    (Some((buffer_count, firmware, sector_count)), Some(sectors)) => {
                        Parsed::Info(InfoAnswer::Accepted(Target {
                            shelf,
                            slot,
                            buffer_count,
                            firmware,
                            sector_count,
                            sectors,
                        }))
                    }
                    // An IDENTIFY answer before any Query Config answer was
                    // taken, or a capacity no LBA can reach.
                    _ => Parsed::Mismatch,
                }
            }
        }
    }
}

/// The error an AoE refusal stands for.
fn aoe_error(code: u8) -> Error {
    match ErrorCode::from_u8(code) {
        Some(ErrorCode::BadArgument) => EINVAL,
        Some(ErrorCode::DeviceUnavailable) => ENXIO,
        Some(ErrorCode::TargetReserved) => EACCES,
        Some(ErrorCode::UnsupportedVersion | ErrorCode::UnrecognizedCommand) => EOPNOTSUPP,
        _ => EIO,
    }
}

/// Why the wire format refused a frame, in the personality's terms.
fn malformed(e: WireError) -> Malformed {
    match e {
        WireError::Short => Malformed::Short,
        WireError::BadVersion => Malformed::Version,
        WireError::BadLength => Malformed::Length,
        WireError::BadSectorCount | WireError::BadLba => Malformed::Range,
        _ => Malformed::Field,
    }
}

/// Sectors of `bytes` bytes, if whole and at most one command's worth.
fn sectors(bytes: u32) -> Result<u8> {
    if bytes % SECTOR_SIZE != 0 {
        return Err(EINVAL);
    }
    u8::try_from(bytes / SECTOR_SIZE).map_err(|_| EINVAL)
}

impl Protocol for Aoe {
    type Info = Target;

    const REQUEST_TYPE: u16 = ETH_P_AOE;
    const RESPONSE_TYPE: u16 = ETH_P_AOE;
    const REQUEST_HEADER_LEN: u32 = ATA_HEADER_LEN as u32;
    const MAX_REQUEST: u32 = 1 << 20;
    const READS_PER_FRAGMENT: bool = true;
    // AoE tells a target nothing about finished requests.
    const SPAN_BOUND: bool = false;
    const ACKS_RUNS: bool = false;

    fn payload_per_frame(frame: u32) -> Option<u32> {
        match wire::sectors_per_frame(frame) {
            0 => None,
            n => Some(n * SECTOR_SIZE),
        }
    }

    fn carries(&self, op: Operation) -> bool {
        matches!(op, Operation::Read | Operation::Write | Operation::Flush)
    }

    fn encode_request(&self, frame: &RequestFrame, out: &mut [u8]) -> Result {
        let tag = wire_tag(frame.tag, frame.seq)?;
        let c: &Command = &frame.command;
        let first = || {
            let at = c.offset.checked_add(u64::from(frame.frag_offset)).ok_or(EINVAL)?;
            if at % u64::from(SECTOR_SIZE) != 0 {
                return Err(EINVAL);
            }
            Ok(at / u64::from(SECTOR_SIZE))
        };
        // Requests are queued only once discovery has bound the target.
        let (shelf, slot) = self.address().ok_or(EINVAL)?;
        let request = match c.op {
            Operation::Read => AtaRequest::read(shelf, slot, tag, first()?, sectors(frame.frag_len)?),
            Operation::Write => AtaRequest::write(shelf, slot, tag, first()?, sectors(frame.frag_len)?),
            Operation::Flush => AtaRequest::flush(shelf, slot, tag),
            Operation::Discard | Operation::WriteZeroes => return Err(EOPNOTSUPP),
        };
        request.encode(out).map_err(|_| EINVAL)
    }

    fn parse(&self, skb: &SkBuff) -> Parsed<Target> {
        let mut head = [0u8; ATA_HEADER_LEN];
        let n = (skb.len() as usize).min(ATA_HEADER_LEN);
        let Some(head) = head.get_mut(..n) else {
            return Parsed::Malformed(Malformed::Short);
        };
        if skb.copy_bits(0, head).is_err() {
            return Parsed::Malformed(Malformed::Short);
        }
        let r = match Response::parse_head(head, skb.len() as usize) {
            Ok(r) => r,
            // Another initiator's request, seen because it was broadcast.
            Err(WireError::NotResponse) => return Parsed::Foreign,
            Err(e) => return Parsed::Malformed(malformed(e)),
        };
        let tag = r.common.tag;
        let discovery = tag & !(DISCOVERY_TAG | 0xffff) == 0 && tag & DISCOVERY_TAG != 0;
        let config_answer = discovery && matches!(r.body, Body::Config(_)) && !r.common.is_error();
        if !self.may_be_target(r.common.major, r.common.minor, config_answer) {
            return Parsed::Foreign;
        }
        if discovery {
            return self.discovery(&r, skb);
        }
        if tag & (DISCOVERY_TAG | 1 << 31) != 0 {
            // Not a tag this initiator sends (another initiator's).
            return Parsed::Foreign;
        }
        let Body::Ata(args) = r.body else {
            // A Query Config answer nobody here asked for (a target
            // announces itself with one when it starts).
            return Parsed::Foreign;
        };
        // The target echoes the argument flags, not the command (its
        // place holds the status): they tell the operation apart.
        let (op, place) = if args.aflags & AFLAG_WRITE != 0 {
            (Operation::Write, Place::Start { at: args.lba * u64::from(SECTOR_SIZE) })
        } else if args.aflags & AFLAG_EXTENDED != 0 {
            (Operation::Read, Place::Start { at: args.lba * u64::from(SECTOR_SIZE) })
        } else {
            (Operation::Flush, Place::Absolute { at: 0, len: 0 })
        };
        let outcome = if r.common.is_error() {
            Err(aoe_error(r.common.error))
        } else if args.failed() {
            Err(if args.err_feature & ATA_ERROR_IDNF != 0 { ENOSPC } else { EIO })
        } else {
            Ok(())
        };
        let (tag, seq) = personality_tag(tag);
        Parsed::Answer(Answer {
            tag,
            seq,
            seq_mask: SEQ_MASK,
            op,
            place,
            outcome,
            data_at: ATA_HEADER_LEN as u32,
        })
    }

    fn progress(&self, step: &Target) {
        let address = pack_address(step.shelf, step.slot);
        // The first target taken is bound; the personality takes answers
        // of the bound target only from then on.
        let _ = self.address.compare_exchange(0, address, Relaxed, Relaxed);
        if self.address.load(Relaxed) == address {
            self.config.store(pack(step.buffer_count, step.firmware, step.sector_count), Relaxed);
        }
    }

    fn info_request(&self, attempt: u32, _finished: Finished, out: &mut [u8; INFO_REQUEST_MAX]) -> Result<usize> {
        let tag = DISCOVERY_TAG | (attempt & 0xffff);
        match (self.address(), self.config()) {
            (Some((shelf, slot)), Some(_)) => {
                AtaRequest::identify(shelf, slot, tag).encode(out).map_err(|_| EINVAL)?;
                Ok(ATA_HEADER_LEN)
            }
            (address, _) => {
                let (major, minor) = address.unwrap_or((wire::MAJOR_ANY, wire::MINOR_ANY));
                ConfigQuery { major, minor, tag }.encode(out).map_err(|_| EINVAL)?;
                Ok(CONFIG_HEADER_LEN)
            }
        }
    }
}
