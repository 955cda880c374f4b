// SPDX-License-Identifier: GPL-2.0

//! Ethernet Block Device (EBD) wire protocol, version 2.
//!
//! This file is `core`-only on purpose: the kernel crate compiles it verbatim
//! as `kernel::net::storage::wire` (the storage personality speaks it; the
//! `ebd` module drives it) and so do the user-space server and tools. `docs/ebd-protocol.md`
//! describes the protocol in prose; this file is the normative definition.
//!
//! Every EBD frame is an Ethernet frame whose payload starts with a fixed
//! [`HEADER_LEN`]-byte header in network byte order. Requests travel in frames
//! of ethertype [`ETH_P_EBD_REQUEST`], responses in [`ETH_P_EBD_RESPONSE`].
//! One block request may be split ("declustered") into several frames; each
//! frame says which byte range of the request it carries (`frag_offset`,
//! `frag_len`), so frames can arrive in any order, twice, or not at all.
//!
//! Parsing treats its input as hostile: [`Header::parse`] checks every field
//! before anything uses it and says exactly why a frame was refused.
//!
//! Version 2 adds to version 1 what makes a late duplicate harmless and keeps
//! disks apart: each disk attachment is a *session* with its own random id
//! and its own request sequence, and every request frame tells the server
//! which of the session's requests the client has finished ([`Finished`]),
//! so the server never executes a frame of a finished request.

/// Ethertype of frames sent by a client to a server.
pub const ETH_P_EBD_REQUEST: u16 = 0x0666;
/// Ethertype of frames sent by a server to a client.
pub const ETH_P_EBD_RESPONSE: u16 = 0x0667;

/// The protocol version this file defines.
pub const VERSION: u8 = 2;

/// Size of the EBD header that follows the Ethernet header.
pub const HEADER_LEN: usize = 64;

/// Size of a version 1 header, which a version 2 server still recognises in
/// order to refuse a version 1 client clearly ([`v1_refusal`]).
pub const V1_HEADER_LEN: usize = 36;

/// Most frames one request may be declustered into: a read request whose
/// `frag_len` would make the server send more response frames is malformed,
/// so a few bytes on the wire cannot make a server send thousands of frames.
pub const MAX_FRAGMENTS: u32 = 1024;

/// Sector size the protocol counts offsets in multiples of.
pub const SECTOR_SIZE: u32 = 512;

/// Largest byte count one request may cover (the per-request limit a client
/// advertises to its block layer must not exceed it).
pub const MAX_REQUEST_LEN: u32 = 1 << 20;

/// Flag: the data of a write must be on stable storage before it is
/// acknowledged (forced unit access).
pub const FLAG_FUA: u16 = 1 << 0;
/// All flags this version defines; any other bit makes a frame malformed.
pub const FLAGS_KNOWN: u16 = FLAG_FUA;

/// What a request asks the server to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Opcode {
    /// Ask for an export's geometry; the response carries [`ExportInfo`].
    Info = 1,
    /// Read `length` bytes at `offset`; the response frames carry the data.
    Read = 2,
    /// Write `length` bytes at `offset`; the request frames carry the data
    /// and are acknowledged by response frames without payload, each
    /// covering one fragment or a run of consecutive fragments.
    Write = 3,
    /// Make every acknowledged write stable; acknowledged once it is.
    Flush = 4,
    /// The range is no longer needed; reads of it may return anything.
    Discard = 5,
    /// The range must read back as zeroes.
    WriteZeroes = 6,
}

impl Opcode {
    /// Decodes an opcode byte, refusing values this version does not define.
    pub const fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Info,
            2 => Self::Read,
            3 => Self::Write,
            4 => Self::Flush,
            5 => Self::Discard,
            6 => Self::WriteZeroes,
            _ => return None,
        })
    }

    /// Whether request frames of this opcode carry data.
    pub const fn request_has_data(self) -> bool {
        matches!(self, Self::Write)
    }

    /// Whether response frames of this opcode carry data.
    pub const fn response_has_data(self) -> bool {
        matches!(self, Self::Read | Self::Info)
    }

    /// Whether a request of this opcode addresses a byte range of the export
    /// (and so must be sector-aligned and within [`MAX_REQUEST_LEN`]).
    pub const fn addresses_range(self) -> bool {
        !matches!(self, Self::Info | Self::Flush)
    }
}

/// Outcome a server reports in a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum Status {
    /// Done.
    Ok = 0,
    /// The backing store failed.
    IoError = 1,
    /// The request was malformed.
    Invalid = 2,
    /// The export is read-only.
    ReadOnly = 3,
    /// The range lies beyond the end of the export.
    OutOfRange = 4,
    /// The export does not support the opcode.
    Unsupported = 5,
    /// No export has that number.
    NoSuchExport = 6,
    /// The export does not serve this client (its address is not allowed).
    Denied = 7,
}

impl Status {
    /// Decodes a status, refusing values this version does not define.
    pub const fn from_u16(v: u16) -> Option<Self> {
        Some(match v {
            0 => Self::Ok,
            1 => Self::IoError,
            2 => Self::Invalid,
            3 => Self::ReadOnly,
            4 => Self::OutOfRange,
            5 => Self::Unsupported,
            6 => Self::NoSuchExport,
            7 => Self::Denied,
            _ => return None,
        })
    }
}

/// Which way a frame travels; it decides which fields must be consistent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client to server, ethertype [`ETH_P_EBD_REQUEST`].
    Request,
    /// Server to client, ethertype [`ETH_P_EBD_RESPONSE`].
    Response,
}

/// Why a frame was refused. Receivers count drops by this reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// Shorter than the header.
    Short,
    /// A version other than [`VERSION`].
    BadVersion,
    /// An opcode this version does not define.
    BadOpcode,
    /// A status this version does not define, or a non-zero status in a request.
    BadStatus,
    /// Flag bits this version does not define.
    BadFlags,
    /// `frag_len` says more payload than the frame holds, or payload where
    /// the opcode carries none.
    BadLength,
    /// The fragment does not lie within the request, the request is larger
    /// than [`MAX_REQUEST_LEN`], or offsets are not sector-aligned.
    BadRange,
    /// A buffer to encode into is smaller than the frame.
    NoSpace,
    /// Reserved bytes are not zero, or a request's session id is zero.
    BadReserved,
}

/// The fixed header of every EBD frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Operation of the request this frame belongs to.
    pub opcode: Opcode,
    /// [`FLAG_FUA`] and future flags.
    pub flags: u16,
    /// Client's slot for the request; echoed by the server. A client with
    /// several queues puts the queue's index in the upper 16 bits and the
    /// request's slot in that queue in the lower 16; a server may steer by
    /// the upper half (`ebd-server` does) and must echo the whole.
    pub tag: u32,
    /// The request's number in its session: one more than the session's
    /// previous request (wrapping). Echoed by the server; with the tag it
    /// identifies the request, so a late response to an earlier use of the
    /// same tag can be told apart.
    pub seq: u32,
    /// Export number on the server.
    pub export: u16,
    /// Outcome (responses only; requests carry [`Status::Ok`]).
    pub status: Status,
    /// Byte offset on the export of the whole request.
    pub offset: u64,
    /// Byte count of the whole request.
    pub length: u32,
    /// Position within the request of the bytes this frame carries or
    /// acknowledges.
    pub frag_offset: u32,
    /// Number of bytes this frame carries or acknowledges.
    pub frag_len: u32,
    /// The client's session: chosen at random (never zero) each time a disk
    /// attaches, echoed by the server. Server-side state is per client
    /// address, export and session.
    pub session: u32,
    /// Requests: which requests of the session the client had finished when
    /// it sent the frame. Responses: all zero, ignored.
    pub finished: Finished,
}

/// Number of requests after [`Finished::below`] that [`Finished::mask`]
/// describes.
pub const FINISHED_MASK_BITS: u32 = 128;

/// Widest spread of sequence numbers a client may have unfinished at once:
/// a client never sends a frame of request `seq` unless
/// `seq - below < FINISHED_SPAN` (wrapping), so every request it may still
/// send is either at `below` or covered by the mask.
pub const FINISHED_SPAN: u32 = FINISHED_MASK_BITS + 1;

/// Which requests of a session the client has *finished*: completed, failed
/// or abandoned, so that it will never again send or accept a frame of
/// theirs.
///
/// Every request whose sequence number is before `below` (serial number
/// arithmetic: `seq.wrapping_sub(below)` read as an `i32` is negative) is
/// finished; `below` itself is not (it is the oldest unfinished request, or
/// the next sequence number if none is unfinished); request `below + 1 + i`
/// is finished if bit `i` of `mask` is set.
///
/// Finishing is permanent, so what frames say can be merged in any order
/// ([`Finished::merge`]): a server that has learnt of a request's finish
/// from any frame drops the request's late duplicates. Since a client sends
/// a request that overlaps an earlier write only after that write finished,
/// every frame of the later request tells the server so, before the server
/// executes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Finished {
    /// Oldest request not known to be finished.
    pub below: u32,
    /// Bit `i`: request `below + 1 + i` is finished.
    pub mask: u128,
}

impl Finished {
    /// Nothing finished before `next`, the first sequence number a session
    /// will use.
    pub const fn starting_at(next: u32) -> Self {
        Finished { below: next, mask: 0 }
    }

    /// Whether request `seq` is known to be finished.
    pub const fn contains(&self, seq: u32) -> bool {
        let ahead = seq.wrapping_sub(self.below);
        if (ahead as i32) < 0 {
            return true;
        }
        if ahead == 0 || ahead > FINISHED_MASK_BITS {
            return false;
        }
        self.mask & (1u128 << (ahead - 1)) != 0
    }

    /// Whether a client may send a frame of request `seq` (see
    /// [`FINISHED_SPAN`]).
    pub const fn admits(&self, seq: u32) -> bool {
        let ahead = seq.wrapping_sub(self.below);
        (ahead as i32) >= 0 && ahead < FINISHED_SPAN
    }

    /// Records that request `seq` finished; moves `below` past it and past
    /// every finished request that follows. Does nothing for a request
    /// outside the span (already finished, or one a client could not have
    /// sent yet).
    pub fn finish(&mut self, seq: u32) {
        let ahead = seq.wrapping_sub(self.below);
        if ahead == 0 {
            loop {
                // Bit 0 tells whether the request after `below` is finished;
                // after the shift bit `i` again describes `below + 1 + i`.
                let next_finished = self.mask & 1 != 0;
                self.mask >>= 1;
                self.below = self.below.wrapping_add(1);
                if !next_finished {
                    return;
                }
            }
        } else if ahead <= FINISHED_MASK_BITS {
            self.mask |= 1u128 << (ahead - 1);
        }
    }

    /// Adds what `other` knows: afterwards `self` contains every request
    /// either contained.
    pub fn merge(&mut self, other: &Finished) {
        if *other == *self {
            return;
        }
        if (other.below.wrapping_sub(self.below) as i32) > 0 {
            // Everything before `other.below` is finished: re-base on it,
            // keeping what we knew of the requests from there on.
            let ours = *self;
            *self = Finished::starting_at(other.below);
            for i in 0..FINISHED_MASK_BITS {
                if ours.contains(other.below.wrapping_add(1 + i)) {
                    self.mask |= 1u128 << i;
                }
            }
            if ours.contains(other.below) {
                self.finish(other.below);
            }
        }
        let mut bits = other.mask;
        while bits != 0 {
            let i = bits.trailing_zeros();
            bits &= bits - 1;
            self.finish(other.below.wrapping_add(1 + i));
        }
    }

    fn encode(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.below.to_be_bytes());
        out[4..20].copy_from_slice(&self.mask.to_be_bytes());
    }

    fn decode(b: &[u8]) -> Self {
        let mut mask = [0u8; 16];
        mask.copy_from_slice(&b[4..20]);
        Finished { below: be32(b, 0), mask: u128::from_be_bytes(mask) }
    }
}

/// The version byte of an EBD frame payload, without checking anything else:
/// lets a receiver tell a peer that speaks another version from garbage.
pub fn peek_version(frame: &[u8]) -> Option<u8> {
    frame.first().copied()
}

/// Builds, into `out`, the version 1 response that refuses the version 1
/// request whose header starts `request` (status [`Status::Unsupported`]),
/// so that a version 1 client fails at once with a clear error instead of
/// waiting for answers it cannot parse. Returns the response's length
/// ([`V1_HEADER_LEN`]); `None` if `request` is not a version 1 Info request
/// (only attaches are answered: a version 1 client sends nothing else before
/// its Info request is answered).
pub fn v1_refusal(request: &[u8], out: &mut [u8]) -> Option<usize> {
    let hdr = request.get(..V1_HEADER_LEN)?;
    if hdr[0] != 1 || hdr[1] != Opcode::Info as u8 {
        return None;
    }
    let out = out.get_mut(..V1_HEADER_LEN)?;
    out.copy_from_slice(hdr);
    out[14..16].copy_from_slice(&(Status::Unsupported as u16).to_be_bytes());
    // A version 1 response carries no payload for an error: nothing follows.
    out[28..36].fill(0);
    Some(V1_HEADER_LEN)
}

#[inline]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
fn be64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(v)
}

impl Header {
    /// Parses and validates the header at the start of `frame` (the bytes
    /// after the Ethernet header). Returns the header and exactly the
    /// `frag_len` payload bytes it announces; trailing bytes (Ethernet
    /// padding) are ignored.
    pub fn parse(frame: &[u8], dir: Direction) -> Result<(Header, &[u8]), WireError> {
        let h = Self::parse_header(frame, dir)?;
        let payload_len = h.payload_len(dir);
        let available = frame.len() - HEADER_LEN;
        if payload_len > available {
            return Err(WireError::BadLength);
        }
        Ok((h, &frame[HEADER_LEN..HEADER_LEN + payload_len]))
    }

    /// Parses and validates only the [`HEADER_LEN`] header bytes at the start
    /// of `frame`, for receivers whose payload is not contiguous with the
    /// header (a paged socket buffer). The caller must then check that the
    /// frame holds [`Header::payload_len`] bytes after the header.
    pub fn parse_header(frame: &[u8], dir: Direction) -> Result<Header, WireError> {
        if frame.len() < HEADER_LEN {
            return Err(WireError::Short);
        }
        if frame[0] != VERSION {
            return Err(WireError::BadVersion);
        }
        let opcode = Opcode::from_u8(frame[1]).ok_or(WireError::BadOpcode)?;
        let flags = be16(frame, 2);
        if flags & !FLAGS_KNOWN != 0 {
            return Err(WireError::BadFlags);
        }
        let status = Status::from_u16(be16(frame, 14)).ok_or(WireError::BadStatus)?;
        if dir == Direction::Request && status != Status::Ok {
            return Err(WireError::BadStatus);
        }
        if frame[60..HEADER_LEN].iter().any(|&b| b != 0) {
            return Err(WireError::BadReserved);
        }
        let h = Header {
            opcode,
            flags,
            tag: be32(frame, 4),
            seq: be32(frame, 8),
            export: be16(frame, 12),
            status,
            offset: be64(frame, 16),
            length: be32(frame, 24),
            frag_offset: be32(frame, 28),
            frag_len: be32(frame, 32),
            session: be32(frame, 36),
            finished: Finished::decode(&frame[40..60]),
        };
        if dir == Direction::Request && h.session == 0 {
            return Err(WireError::BadReserved);
        }
        h.check_range(dir)?;
        Ok(h)
    }

    /// Number of payload bytes a frame with this header carries.
    pub fn payload_len(&self, dir: Direction) -> usize {
        let carries = match dir {
            Direction::Request => self.opcode.request_has_data(),
            // An error response carries no data whatever the opcode.
            Direction::Response => self.opcode.response_has_data() && self.status == Status::Ok,
        };
        if carries {
            self.frag_len as usize
        } else {
            0
        }
    }

    /// Checks that the fragment lies within the request, the request is
    /// well-formed for its opcode, and a read request does not ask for more
    /// than [`MAX_FRAGMENTS`] response frames.
    fn check_range(&self, dir: Direction) -> Result<(), WireError> {
        let end = self
            .frag_offset
            .checked_add(self.frag_len)
            .ok_or(WireError::BadRange)?;
        if end > self.length {
            return Err(WireError::BadRange);
        }
        if dir == Direction::Request && self.opcode == Opcode::Read && self.length > 0 {
            // `frag_len` is the payload per response frame the client wants.
            if self.frag_len == 0 || self.length.div_ceil(self.frag_len) > MAX_FRAGMENTS {
                return Err(WireError::BadRange);
            }
        }
        if self.opcode.addresses_range() {
            if self.length > MAX_REQUEST_LEN
                || self.offset % u64::from(SECTOR_SIZE) != 0
                || self.length % SECTOR_SIZE != 0
                || self.offset.checked_add(u64::from(self.length)).is_none()
            {
                return Err(WireError::BadRange);
            }
        } else if self.offset != 0 || self.length > MAX_REQUEST_LEN {
            return Err(WireError::BadRange);
        }
        Ok(())
    }

    /// Writes the header into the first [`HEADER_LEN`] bytes of `out`.
    pub fn encode(&self, out: &mut [u8]) -> Result<(), WireError> {
        let out = out.get_mut(..HEADER_LEN).ok_or(WireError::NoSpace)?;
        out[0] = VERSION;
        out[1] = self.opcode as u8;
        out[2..4].copy_from_slice(&self.flags.to_be_bytes());
        out[4..8].copy_from_slice(&self.tag.to_be_bytes());
        out[8..12].copy_from_slice(&self.seq.to_be_bytes());
        out[12..14].copy_from_slice(&self.export.to_be_bytes());
        out[14..16].copy_from_slice(&(self.status as u16).to_be_bytes());
        out[16..24].copy_from_slice(&self.offset.to_be_bytes());
        out[24..28].copy_from_slice(&self.length.to_be_bytes());
        out[28..32].copy_from_slice(&self.frag_offset.to_be_bytes());
        out[32..36].copy_from_slice(&self.frag_len.to_be_bytes());
        out[36..40].copy_from_slice(&self.session.to_be_bytes());
        self.finished.encode(&mut out[40..60]);
        out[60..HEADER_LEN].fill(0);
        Ok(())
    }
}

/// Largest payload a frame may carry on a link of the given MTU, rounded
/// down to whole sectors so that declustered requests stay sector-aligned.
/// `None` if the MTU cannot carry even one sector.
pub const fn payload_per_frame(mtu: u32) -> Option<u32> {
    if mtu < HEADER_LEN as u32 {
        return None;
    }
    let room = (mtu - HEADER_LEN as u32) / SECTOR_SIZE * SECTOR_SIZE;
    if room == 0 {
        None
    } else {
        Some(room)
    }
}

/// Export geometry, the payload of an [`Opcode::Info`] response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExportInfo {
    /// Size of the export in bytes (a multiple of [`SECTOR_SIZE`]).
    pub size: u64,
    /// Logical block size the client should use (a power of two, at least
    /// [`SECTOR_SIZE`], at most 4096).
    pub block_size: u32,
    /// `EXPORT_*` bits.
    pub flags: u32,
}

/// Export flag: writes are refused.
pub const EXPORT_READ_ONLY: u32 = 1 << 0;
/// Export flag: [`Opcode::Flush`] reaches stable storage.
pub const EXPORT_FLUSH: u32 = 1 << 1;
/// Export flag: [`Opcode::Discard`] is supported.
pub const EXPORT_DISCARD: u32 = 1 << 2;
/// Export flag: [`Opcode::WriteZeroes`] is supported.
pub const EXPORT_WRITE_ZEROES: u32 = 1 << 3;

impl ExportInfo {
    /// Encoded size.
    pub const LEN: usize = 16;

    /// Parses and validates an [`Opcode::Info`] response payload.
    pub fn parse(payload: &[u8]) -> Result<Self, WireError> {
        if payload.len() < Self::LEN {
            return Err(WireError::Short);
        }
        let info = ExportInfo {
            size: be64(payload, 0),
            block_size: be32(payload, 8),
            flags: be32(payload, 12),
        };
        if !info.block_size.is_power_of_two()
            || info.block_size < SECTOR_SIZE
            || info.block_size > 4096
            || info.size % u64::from(SECTOR_SIZE) != 0
        {
            return Err(WireError::BadRange);
        }
        Ok(info)
    }

    /// Writes the payload into the first [`Self::LEN`] bytes of `out`.
    pub fn encode(&self, out: &mut [u8]) -> Result<(), WireError> {
        let out = out.get_mut(..Self::LEN).ok_or(WireError::NoSpace)?;
        out[0..8].copy_from_slice(&self.size.to_be_bytes());
        out[8..12].copy_from_slice(&self.block_size.to_be_bytes());
        out[12..16].copy_from_slice(&self.flags.to_be_bytes());
        Ok(())
    }
}
