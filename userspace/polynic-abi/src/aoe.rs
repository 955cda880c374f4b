// SPDX-License-Identifier: GPL-2.0

//! ATA over Ethernet (AoE) wire format, protocol revision 1, as an initiator
//! speaks it.
//!
//! This file is `core`-only on purpose: the kernel crate compiles it verbatim
//! (as `kernel::net::aoe`, which the `aoei` module's protocol speaks) and so
//! do the host tests, so the two cannot drift apart.
//!
//! Every AoE frame is an Ethernet frame of ethertype [`ETH_P_AOE`] whose
//! payload starts with a [`COMMON_LEN`]-byte [`Common`] header in network
//! byte order, followed by the arguments of its command:
//!
//! - [`Command::Ata`]: 12 bytes of [`AtaArgs`] (the ATA task-file registers,
//!   the LBA little-endian), then the sector data of a write request or of a
//!   read/IDENTIFY response ([`ATA_HEADER_LEN`] bytes of headers in all);
//! - [`Command::QueryConfig`]: 8 bytes of [`ConfigArgs`], then the target's
//!   config string ([`CONFIG_HEADER_LEN`] bytes of headers in all).
//!
//! An initiator builds requests with [`AtaRequest::encode`] and
//! [`ConfigQuery::encode`], and checks what comes back with
//! [`Response::parse`] and then, once it has matched the response to the
//! request it sent by tag, [`Response::ata_outcome`].
//!
//! Parsing treats its input as hostile: anyone on the segment can send any
//! frame of this ethertype, so every field is checked before anything uses
//! it, and each refusal says exactly why ([`WireError`]), so that receivers
//! can count drops by reason.
//!
//! What targets do in practice, learnt from `vblade` (version 25, the one in
//! Debian) and the Linux `aoe` driver, shapes several checks here:
//!
//! - A target answers from its own shelf and slot, never from the broadcast
//!   address, and echoes the tag; the tag is the only field an initiator can
//!   match a response by. `vblade` overwrites the sector count of an ATA
//!   response with the count *left to do* (0 on success), so the response's
//!   count says nothing about the data it carries: how much data a read
//!   answer must hold is known only from the request
//!   ([`Response::ata_outcome`] takes it).
//! - Medium errors travel in the ATA status register ([`STATUS_ERR`]) with
//!   the AoE error flag clear; the AoE error flag means the target refused
//!   the command itself (too many sectors, a reservation, ...).
//! - `vblade` answers FLUSH CACHE with status 0 (no [`STATUS_DRDY`]), so
//!   success is "no failure bit set" ([`STATUS_FAILED`]), not "DRDY set".
//! - `vblade` executes ATA commands sent to the broadcast shelf/slot on every
//!   target that hears them, so the encoder refuses to address an ATA
//!   command to [`MAJOR_ANY`] or [`MINOR_ANY`].
//! - Frames may arrive unpadded (a virtual link does not pad to 60 bytes) or
//!   padded (a write acknowledgement from `vblade` is always 60 bytes and
//!   carries 24 bytes of the written data after the headers): parsing never
//!   depends on the frame length except to check that announced bytes are
//!   there.

/// Ethertype of AoE frames, both directions.
pub const ETH_P_AOE: u16 = 0x88A2;

/// The protocol revision this file speaks, carried in the high nibble of the
/// first header byte.
pub const VERSION: u8 = 1;

/// Sector size every AoE ATA command counts in.
pub const SECTOR_SIZE: u32 = 512;

/// Size of the common header that follows the Ethernet header.
pub const COMMON_LEN: usize = 10;

/// Size of the ATA arguments that follow the common header.
pub const ATA_ARGS_LEN: usize = 12;

/// Size of the headers of an ATA frame (common + ATA arguments); sector data
/// starts at this offset.
pub const ATA_HEADER_LEN: usize = COMMON_LEN + ATA_ARGS_LEN;

/// Size of the Query Config arguments that follow the common header.
pub const CONFIG_ARGS_LEN: usize = 8;

/// Size of the headers of a Query Config frame (common + config arguments);
/// the config string starts at this offset.
pub const CONFIG_HEADER_LEN: usize = COMMON_LEN + CONFIG_ARGS_LEN;

/// Longest config string the protocol allows (and `vblade` stores).
pub const MAX_CONFIG_LEN: usize = 1024;

/// Shelf (major) address every target answers to.
pub const MAJOR_ANY: u16 = 0xffff;
/// Slot (minor) address every target answers to.
pub const MINOR_ANY: u8 = 0xff;

/// Flag: the frame is a response (set by the target).
pub const FLAG_RESPONSE: u8 = 0x8;
/// Flag: the target refused the command; the error byte says why
/// ([`ErrorCode`]).
pub const FLAG_ERROR: u8 = 0x4;
/// The flag bits of the low nibble of the first header byte; the other two
/// are reserved. Received reserved bits are ignored (targets echo the
/// request's flags, so they are zero when our requests are).
pub const FLAGS_MASK: u8 = 0xf;

/// ATA argument flag: the command is a 48-bit ("extended") one; the six LBA
/// bytes are all address.
pub const AFLAG_EXTENDED: u8 = 0x40;
/// ATA argument flag: the device bit of the device/head register.
pub const AFLAG_DEVICE: u8 = 0x10;
/// ATA argument flag: the target may acknowledge a write before it is done.
/// Never sent by this initiator (`vblade` ignores it anyway).
pub const AFLAG_ASYNC: u8 = 0x02;
/// ATA argument flag: the request carries data to write.
pub const AFLAG_WRITE: u8 = 0x01;

/// ATA READ SECTORS EXT (48-bit LBA, PIO).
pub const ATA_READ_SECTORS_EXT: u8 = 0x24;
/// ATA WRITE SECTORS EXT (48-bit LBA, PIO).
pub const ATA_WRITE_SECTORS_EXT: u8 = 0x34;
/// ATA FLUSH CACHE (28-bit form). `vblade` accepts it (and does nothing).
pub const ATA_FLUSH_CACHE: u8 = 0xE7;
/// ATA FLUSH CACHE EXT. `vblade` answers it with ABRT.
pub const ATA_FLUSH_CACHE_EXT: u8 = 0xEA;
/// ATA IDENTIFY DEVICE: one 512-byte block describing the device.
pub const ATA_IDENTIFY_DEVICE: u8 = 0xEC;

/// ATA status: the command failed; the error register says how.
pub const STATUS_ERR: u8 = 0x01;
/// ATA status: data request (the device still wants to transfer data).
pub const STATUS_DRQ: u8 = 0x08;
/// ATA status: device fault.
pub const STATUS_DF: u8 = 0x20;
/// ATA status: device ready. Not required for success: `vblade` answers
/// FLUSH CACHE with status 0.
pub const STATUS_DRDY: u8 = 0x40;
/// ATA status: busy (the registers are not valid).
pub const STATUS_BSY: u8 = 0x80;
/// Status bits any of which means the command did not complete: failed,
/// faulted, still busy, or still wanting data. (The Linux `aoe` driver
/// judges responses by the same bits.)
pub const STATUS_FAILED: u8 = STATUS_BSY | STATUS_DF | STATUS_DRQ | STATUS_ERR;

/// ATA error register: command aborted (unsupported command, or I/O error
/// in `vblade`).
pub const ATA_ERROR_ABRT: u8 = 0x04;
/// ATA error register: address not found (beyond the end of the device).
pub const ATA_ERROR_IDNF: u8 = 0x10;
/// ATA error register: uncorrectable data error.
pub const ATA_ERROR_UNC: u8 = 0x40;

/// Number of sectors a 48-bit LBA can address: every sector of a request
/// must lie below it.
pub const LBA48_LIMIT: u64 = 1 << 48;

/// Largest sector count the 28-bit IDENTIFY words may report.
pub const LBA28_LIMIT: u64 = 0x0fff_ffff;

/// Sectors per ATA command to assume when a target's Query Config answer
/// says 0 ("unspecified"): the Linux `aoe` driver's default, and what every
/// target accepts on a standard 1500-byte MTU.
pub const DEFAULT_SECTORS: u8 = 2;

/// Device/head register value sent with the 28-bit register commands
/// (IDENTIFY DEVICE, FLUSH CACHE): the two obsolete bits set, as the Linux
/// `aoe` driver sends IDENTIFY. It travels in LBA byte 3.
pub const DEVICE_HEAD_LEGACY: u8 = 0xA0;

/// The command of an AoE frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Command {
    /// Issue an ATA command to the target's device.
    Ata = 0,
    /// Ask for (or set) the target's configuration and limits.
    QueryConfig = 1,
}

impl Command {
    /// Decodes a command byte, refusing the ones this initiator does not
    /// speak (MAC mask list 2, reserve/release 3, vendor 0xf0.. and
    /// undefined values).
    pub const fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::Ata,
            1 => Self::QueryConfig,
            _ => return None,
        })
    }
}

/// Why a target refused a command (the error byte of a response with
/// [`FLAG_ERROR`] set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ErrorCode {
    /// The target does not know the command.
    UnrecognizedCommand = 1,
    /// An argument is out of range (`vblade`: more sectors than it accepts,
    /// IDENTIFY with a sector count other than 1, a write frame shorter
    /// than its sector count says).
    BadArgument = 2,
    /// The device is not available.
    DeviceUnavailable = 3,
    /// A Query Config "set" found another config string already set.
    ConfigStringPresent = 4,
    /// The target does not speak this protocol version.
    UnsupportedVersion = 5,
    /// The target is reserved for other initiators.
    TargetReserved = 6,
}

impl ErrorCode {
    /// Decodes an error byte, `None` for values the protocol does not
    /// define.
    pub const fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::UnrecognizedCommand,
            2 => Self::BadArgument,
            3 => Self::DeviceUnavailable,
            4 => Self::ConfigStringPresent,
            5 => Self::UnsupportedVersion,
            6 => Self::TargetReserved,
            _ => return None,
        })
    }
}

/// The sub-command of a Query Config frame (low nibble of its version byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ConfigCommand {
    /// Read the config string. The only one this initiator sends.
    Read = 0,
    /// Answer only if the config string equals the request's.
    Test = 1,
    /// Answer only if the config string starts with the request's.
    TestPrefix = 2,
    /// Set the config string if none is set.
    Set = 3,
    /// Set the config string unconditionally.
    ForceSet = 4,
}

impl ConfigCommand {
    /// Decodes a config sub-command, refusing undefined values.
    pub const fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::Read,
            1 => Self::Test,
            2 => Self::TestPrefix,
            3 => Self::Set,
            4 => Self::ForceSet,
            _ => return None,
        })
    }
}

/// Why a frame was refused, or a request could not be encoded. Receivers
/// count drops by this reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// Shorter than the headers its command needs.
    Short,
    /// A protocol version other than [`VERSION`].
    BadVersion,
    /// A request where a response was expected ([`FLAG_RESPONSE`] clear):
    /// another initiator's frame, seen because it was broadcast.
    NotResponse,
    /// A response where a request was expected ([`FLAG_RESPONSE`] set).
    NotRequest,
    /// A command other than [`Command::Ata`] and [`Command::QueryConfig`].
    BadCommand,
    /// A response from the broadcast shelf or slot (a target always answers
    /// from its own), or an ATA request to them (every target would execute
    /// it).
    BadAddress,
    /// Announced bytes are missing: a config string longer than the frame
    /// or than [`MAX_CONFIG_LEN`], a successful read or IDENTIFY answer
    /// without all its data, a write request without all its data; or a
    /// head longer than the frame it is said to start
    /// ([`Response::parse_head`]).
    BadLength,
    /// A Query Config sub-command the protocol does not define.
    BadConfigCommand,
    /// An ATA command this initiator does not send.
    UnsupportedAta,
    /// ATA argument flags that contradict the command (a write without
    /// [`AFLAG_WRITE`], or the reverse).
    BadAflags,
    /// A sector count the command does not allow: 0 for a read or write
    /// (ATA reads 0 as 65536, `vblade` as 0), anything but 1 for IDENTIFY,
    /// anything but 0 for a flush.
    BadSectorCount,
    /// An LBA the command does not allow: sectors at or beyond
    /// [`LBA48_LIMIT`], or a non-zero LBA for a command without one.
    BadLba,
    /// A response that does not answer the request it was matched with
    /// (other tag, other target, other command).
    Mismatch,
    /// A buffer to encode into is smaller than the headers.
    NoSpace,
}

/// The first `N` bytes of `b` from `at`, as an array, if they are there.
fn array<const N: usize>(b: &[u8], at: usize) -> Option<&[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// The first `N` bytes of `b` from `at`, as a mutable array, if they are
/// there.
fn array_mut<const N: usize>(b: &mut [u8], at: usize) -> Option<&mut [u8; N]> {
    b.get_mut(at..at.checked_add(N)?)?.try_into().ok()
}

/// The common header of every AoE frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Common {
    /// [`FLAG_RESPONSE`], [`FLAG_ERROR`] (low nibble only; the version
    /// nibble is always [`VERSION`]).
    pub flags: u8,
    /// Why the target refused the command, if [`FLAG_ERROR`] is set
    /// ([`ErrorCode`]); meaningless otherwise.
    pub error: u8,
    /// Shelf address of the target (big-endian on the wire).
    pub major: u16,
    /// Slot address of the target.
    pub minor: u8,
    /// What the frame does.
    pub command: Command,
    /// Chosen by the initiator, echoed by the target unchanged.
    pub tag: u32,
}

impl Common {
    /// Parses the common header at the start of `frame` (the bytes after
    /// the Ethernet header): checks the length, the version and the command,
    /// not the direction.
    pub fn parse(frame: &[u8]) -> Result<Self, WireError> {
        Self::from_raw(raw_common(frame)?)
    }

    fn from_raw(raw: &[u8; COMMON_LEN]) -> Result<Self, WireError> {
        let [verfl, error, maj0, maj1, minor, command, t0, t1, t2, t3] = *raw;
        Ok(Common {
            flags: verfl & FLAGS_MASK,
            error,
            major: u16::from_be_bytes([maj0, maj1]),
            minor,
            command: Command::from_u8(command).ok_or(WireError::BadCommand)?,
            tag: u32::from_be_bytes([t0, t1, t2, t3]),
        })
    }

    /// Writes the header into the first [`COMMON_LEN`] bytes of `out`.
    pub fn encode(&self, out: &mut [u8]) -> Result<(), WireError> {
        let out = array_mut::<COMMON_LEN>(out, 0).ok_or(WireError::NoSpace)?;
        let [maj0, maj1] = self.major.to_be_bytes();
        let [t0, t1, t2, t3] = self.tag.to_be_bytes();
        *out = [
            VERSION << 4 | (self.flags & FLAGS_MASK),
            self.error,
            maj0,
            maj1,
            self.minor,
            self.command as u8,
            t0,
            t1,
            t2,
            t3,
        ];
        Ok(())
    }

    /// Whether the frame is a response.
    pub const fn is_response(&self) -> bool {
        self.flags & FLAG_RESPONSE != 0
    }

    /// Whether the target refused the command.
    pub const fn is_error(&self) -> bool {
        self.flags & FLAG_ERROR != 0
    }

    /// Why the target refused the command: `None` if it did not, or if its
    /// error byte is not one the protocol defines (see [`Common::error`]
    /// for the raw value).
    pub const fn error_code(&self) -> Option<ErrorCode> {
        if self.is_error() {
            ErrorCode::from_u8(self.error)
        } else {
            None
        }
    }
}

/// The common header bytes at the start of `frame`, checked for length and
/// version only.
fn raw_common(frame: &[u8]) -> Result<&[u8; COMMON_LEN], WireError> {
    let raw = array::<COMMON_LEN>(frame, 0).ok_or(WireError::Short)?;
    if raw[0] >> 4 != VERSION {
        return Err(WireError::BadVersion);
    }
    Ok(raw)
}

/// The ATA arguments of an ATA frame: the ATA task-file registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AtaArgs {
    /// [`AFLAG_EXTENDED`], [`AFLAG_DEVICE`], [`AFLAG_ASYNC`], [`AFLAG_WRITE`].
    pub aflags: u8,
    /// Requests: the feature register. Responses: the error register
    /// (`ATA_ERROR_*`; `vblade` leaves it undefined after FLUSH CACHE).
    pub err_feature: u8,
    /// Requests: sectors to transfer. Responses: whatever the target leaves
    /// there (`vblade`: sectors *not* transferred, so 0 on success, and 0
    /// after IDENTIFY) -- not the amount of data the response carries.
    pub sector_count: u8,
    /// Requests: the ATA command. Responses: the status register
    /// (`STATUS_*`).
    pub cmd_status: u8,
    /// The six LBA bytes, least significant first, as a 48-bit number. For
    /// 28-bit commands byte 3 is the device/head register. `vblade` echoes
    /// them unchanged.
    pub lba: u64,
}

impl AtaArgs {
    /// Parses the [`ATA_ARGS_LEN`] bytes at the start of `args`. The two
    /// reserved bytes are ignored.
    pub fn parse(args: &[u8]) -> Result<Self, WireError> {
        let raw = array::<ATA_ARGS_LEN>(args, 0).ok_or(WireError::Short)?;
        let [aflags, err_feature, sector_count, cmd_status, l0, l1, l2, l3, l4, l5, _, _] = *raw;
        Ok(AtaArgs {
            aflags,
            err_feature,
            sector_count,
            cmd_status,
            lba: u64::from_le_bytes([l0, l1, l2, l3, l4, l5, 0, 0]),
        })
    }

    /// Writes the arguments into the first [`ATA_ARGS_LEN`] bytes of `out`,
    /// the reserved bytes zero. Refuses an `lba` that does not fit in 48
    /// bits.
    pub fn encode(&self, out: &mut [u8]) -> Result<(), WireError> {
        if self.lba >= LBA48_LIMIT {
            return Err(WireError::BadLba);
        }
        let out = array_mut::<ATA_ARGS_LEN>(out, 0).ok_or(WireError::NoSpace)?;
        let [l0, l1, l2, l3, l4, l5, _, _] = self.lba.to_le_bytes();
        *out = [
            self.aflags,
            self.err_feature,
            self.sector_count,
            self.cmd_status,
            l0,
            l1,
            l2,
            l3,
            l4,
            l5,
            0,
            0,
        ];
        Ok(())
    }

    /// Whether the status register of a response says the command did not
    /// complete ([`STATUS_FAILED`]).
    pub const fn failed(&self) -> bool {
        self.cmd_status & STATUS_FAILED != 0
    }
}

/// The ATA operations this initiator issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtaOp {
    /// READ SECTORS EXT: `sectors` sectors from `lba`; the response carries
    /// them.
    Read,
    /// WRITE SECTORS EXT: `sectors` sectors to `lba`; the request carries
    /// them after the headers.
    Write,
    /// FLUSH CACHE, the 28-bit form: the one `vblade` accepts. No LBA, no
    /// sectors.
    Flush,
    /// FLUSH CACHE EXT: for targets whose IDENTIFY announces it (word 83
    /// bit 13); `vblade` aborts it. No LBA, no sectors.
    FlushExt,
    /// IDENTIFY DEVICE: one sector, no LBA; the response carries the
    /// 512-byte IDENTIFY block.
    Identify,
}

impl AtaOp {
    /// The ATA command byte.
    pub const fn command(self) -> u8 {
        match self {
            Self::Read => ATA_READ_SECTORS_EXT,
            Self::Write => ATA_WRITE_SECTORS_EXT,
            Self::Flush => ATA_FLUSH_CACHE,
            Self::FlushExt => ATA_FLUSH_CACHE_EXT,
            Self::Identify => ATA_IDENTIFY_DEVICE,
        }
    }

    /// Decodes an ATA command byte this initiator sends.
    pub const fn from_command(cmd: u8) -> Option<Self> {
        Some(match cmd {
            ATA_READ_SECTORS_EXT => Self::Read,
            ATA_WRITE_SECTORS_EXT => Self::Write,
            ATA_FLUSH_CACHE => Self::Flush,
            ATA_FLUSH_CACHE_EXT => Self::FlushExt,
            ATA_IDENTIFY_DEVICE => Self::Identify,
            _ => return None,
        })
    }

    /// The argument flags a request of this operation carries: 48-bit
    /// commands are marked extended, writes carry data.
    pub const fn aflags(self) -> u8 {
        match self {
            Self::Read | Self::FlushExt => AFLAG_EXTENDED,
            Self::Write => AFLAG_EXTENDED | AFLAG_WRITE,
            Self::Flush | Self::Identify => 0,
        }
    }

    /// Whether the operation addresses sectors (an LBA and a count).
    pub const fn addresses_sectors(self) -> bool {
        matches!(self, Self::Read | Self::Write)
    }

    /// Whether the operation is a 28-bit register command, whose LBA byte 3
    /// carries the device/head register.
    const fn is_28_bit(self) -> bool {
        matches!(self, Self::Flush | Self::Identify)
    }
}

/// An ATA request to one target: what [`AtaRequest::encode`] turns into the
/// [`ATA_HEADER_LEN`] bytes of headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AtaRequest {
    /// Shelf of the target; never [`MAJOR_ANY`].
    pub major: u16,
    /// Slot of the target; never [`MINOR_ANY`].
    pub minor: u8,
    /// Echoed by the target; how the initiator finds the request a response
    /// answers.
    pub tag: u32,
    /// What to do.
    pub op: AtaOp,
    /// First sector (read/write); 0 for the others.
    pub lba: u64,
    /// Sectors to transfer: 1..=255 for read/write (at most what the
    /// target's Query Config answer and the MTU allow, see
    /// [`ConfigArgs::max_sectors`]), 1 for IDENTIFY, 0 for flushes.
    pub sectors: u8,
}

impl AtaRequest {
    /// A read of `sectors` sectors from `lba`.
    pub const fn read(major: u16, minor: u8, tag: u32, lba: u64, sectors: u8) -> Self {
        AtaRequest { major, minor, tag, op: AtaOp::Read, lba, sectors }
    }

    /// A write of `sectors` sectors to `lba`; the data follows the headers.
    pub const fn write(major: u16, minor: u8, tag: u32, lba: u64, sectors: u8) -> Self {
        AtaRequest { major, minor, tag, op: AtaOp::Write, lba, sectors }
    }

    /// A FLUSH CACHE.
    pub const fn flush(major: u16, minor: u8, tag: u32) -> Self {
        AtaRequest { major, minor, tag, op: AtaOp::Flush, lba: 0, sectors: 0 }
    }

    /// An IDENTIFY DEVICE.
    pub const fn identify(major: u16, minor: u8, tag: u32) -> Self {
        AtaRequest { major, minor, tag, op: AtaOp::Identify, lba: 0, sectors: 1 }
    }

    /// Checks that the request is one a target can execute unambiguously.
    pub fn check(&self) -> Result<(), WireError> {
        if self.major == MAJOR_ANY || self.minor == MINOR_ANY {
            return Err(WireError::BadAddress);
        }
        let (sectors_ok, lba_ok) = match self.op {
            AtaOp::Read | AtaOp::Write => (
                self.sectors != 0,
                self.lba
                    .checked_add(u64::from(self.sectors))
                    .is_some_and(|end| end <= LBA48_LIMIT),
            ),
            AtaOp::Flush | AtaOp::FlushExt => (self.sectors == 0, self.lba == 0),
            AtaOp::Identify => (self.sectors == 1, self.lba == 0),
        };
        if !sectors_ok {
            return Err(WireError::BadSectorCount);
        }
        if !lba_ok {
            return Err(WireError::BadLba);
        }
        Ok(())
    }

    /// The ATA arguments the request carries.
    pub fn args(&self) -> Result<AtaArgs, WireError> {
        self.check()?;
        let lba = if self.op.is_28_bit() {
            u64::from(DEVICE_HEAD_LEGACY) << 24
        } else {
            self.lba
        };
        Ok(AtaArgs {
            aflags: self.op.aflags(),
            err_feature: 0,
            sector_count: self.sectors,
            cmd_status: self.op.command(),
            lba,
        })
    }

    /// Writes the request's headers into the first [`ATA_HEADER_LEN`] bytes
    /// of `out`; a write's data goes after them ([`Self::data_len`] bytes).
    /// Writes nothing if it refuses.
    pub fn encode(&self, out: &mut [u8]) -> Result<(), WireError> {
        let args = self.args()?;
        let out = array_mut::<ATA_HEADER_LEN>(out, 0).ok_or(WireError::NoSpace)?;
        Common {
            flags: 0,
            error: 0,
            major: self.major,
            minor: self.minor,
            command: Command::Ata,
            tag: self.tag,
        }
        .encode(out)?;
        args.encode(out.get_mut(COMMON_LEN..).ok_or(WireError::NoSpace)?)
    }

    /// Parses and validates an ATA request (a target's view; also lets the
    /// host tests check the encoder). A write must carry all its data.
    /// Trailing bytes (Ethernet padding) are ignored.
    pub fn parse(frame: &[u8]) -> Result<Self, WireError> {
        let raw = raw_common(frame)?;
        if raw[0] & FLAG_RESPONSE != 0 {
            return Err(WireError::NotRequest);
        }
        let common = Common::from_raw(raw)?;
        if common.command != Command::Ata {
            return Err(WireError::BadCommand);
        }
        let args = AtaArgs::parse(frame.get(COMMON_LEN..).ok_or(WireError::Short)?)?;
        let op = AtaOp::from_command(args.cmd_status).ok_or(WireError::UnsupportedAta)?;
        if (args.aflags & AFLAG_WRITE != 0) != (op == AtaOp::Write) {
            return Err(WireError::BadAflags);
        }
        let req = AtaRequest {
            major: common.major,
            minor: common.minor,
            tag: common.tag,
            op,
            // The 28-bit commands here take no LBA: their LBA bytes hold
            // only the device/head register.
            lba: if op.addresses_sectors() { args.lba } else { 0 },
            sectors: args.sector_count,
        };
        req.check()?;
        if frame.len().saturating_sub(ATA_HEADER_LEN) < req.data_len() {
            return Err(WireError::BadLength);
        }
        Ok(req)
    }

    /// Bytes of data the request carries after its headers.
    pub const fn data_len(&self) -> usize {
        match self.op {
            AtaOp::Write => self.sectors as usize * SECTOR_SIZE as usize,
            _ => 0,
        }
    }

    /// Bytes of data a successful response must carry after its headers.
    pub const fn response_data_len(&self) -> usize {
        match self.op {
            AtaOp::Read => self.sectors as usize * SECTOR_SIZE as usize,
            AtaOp::Identify => SECTOR_SIZE as usize,
            _ => 0,
        }
    }
}

/// A Query Config "read" request: asks a target (or, to [`MAJOR_ANY`] /
/// [`MINOR_ANY`], every target) for its limits and config string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigQuery {
    /// Shelf to ask, or [`MAJOR_ANY`].
    pub major: u16,
    /// Slot to ask, or [`MINOR_ANY`].
    pub minor: u8,
    /// Echoed by the target(s).
    pub tag: u32,
}

impl ConfigQuery {
    /// Writes the request into the first [`CONFIG_HEADER_LEN`] bytes of
    /// `out`: sub-command [`ConfigCommand::Read`], no config string. The
    /// fields a target fills in are zero, the version nibble of the config
    /// arguments included, as the Linux `aoe` driver sends it (targets read
    /// only the sub-command).
    pub fn encode(&self, out: &mut [u8]) -> Result<(), WireError> {
        let out = array_mut::<CONFIG_HEADER_LEN>(out, 0).ok_or(WireError::NoSpace)?;
        Common {
            flags: 0,
            error: 0,
            major: self.major,
            minor: self.minor,
            command: Command::QueryConfig,
            tag: self.tag,
        }
        .encode(out)?;
        ConfigArgs {
            buffer_count: 0,
            firmware: 0,
            sector_count: 0,
            aoe_version: 0,
            command: ConfigCommand::Read,
            config_len: 0,
        }
        .encode(out.get_mut(COMMON_LEN..).ok_or(WireError::NoSpace)?)
    }

    /// Parses a Query Config request (a target's view; also lets the host
    /// tests check the encoder). Refuses sub-commands other than
    /// [`ConfigCommand::Read`] ([`WireError::BadConfigCommand`]): this is the
    /// only one this side speaks.
    pub fn parse(frame: &[u8]) -> Result<Self, WireError> {
        let raw = raw_common(frame)?;
        if raw[0] & FLAG_RESPONSE != 0 {
            return Err(WireError::NotRequest);
        }
        let common = Common::from_raw(raw)?;
        if common.command != Command::QueryConfig {
            return Err(WireError::BadCommand);
        }
        let args = ConfigArgs::parse(frame.get(COMMON_LEN..).ok_or(WireError::Short)?)?;
        if args.command != ConfigCommand::Read {
            return Err(WireError::BadConfigCommand);
        }
        Ok(ConfigQuery { major: common.major, minor: common.minor, tag: common.tag })
    }
}

/// The Query Config arguments: a target's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigArgs {
    /// Requests the target can queue (`vblade`: 16 unless started with
    /// `-b`). An initiator keeps at most this many outstanding.
    pub buffer_count: u16,
    /// Target firmware version (`vblade` 25: 0x4019).
    pub firmware: u16,
    /// Most sectors one ATA command may carry; 0 means unspecified
    /// ([`DEFAULT_SECTORS`]). `vblade` computes it from its interface's MTU
    /// as `(mtu - 36) / 512` and refuses larger commands
    /// ([`ErrorCode::BadArgument`]).
    pub sector_count: u8,
    /// Protocol version the target speaks (high nibble of the version
    /// byte); zero in requests.
    pub aoe_version: u8,
    /// Sub-command (low nibble of the version byte).
    pub command: ConfigCommand,
    /// Length of the config string that follows the arguments.
    pub config_len: u16,
}

impl ConfigArgs {
    /// Parses the [`CONFIG_ARGS_LEN`] bytes at the start of `args`.
    pub fn parse(args: &[u8]) -> Result<Self, WireError> {
        let raw = array::<CONFIG_ARGS_LEN>(args, 0).ok_or(WireError::Short)?;
        let [b0, b1, f0, f1, sector_count, vercmd, c0, c1] = *raw;
        Ok(ConfigArgs {
            buffer_count: u16::from_be_bytes([b0, b1]),
            firmware: u16::from_be_bytes([f0, f1]),
            sector_count,
            aoe_version: vercmd >> 4,
            command: ConfigCommand::from_u8(vercmd & 0xf).ok_or(WireError::BadConfigCommand)?,
            config_len: u16::from_be_bytes([c0, c1]),
        })
    }

    /// Writes the arguments into the first [`CONFIG_ARGS_LEN`] bytes of
    /// `out` (`aoe_version` is truncated to its nibble).
    pub fn encode(&self, out: &mut [u8]) -> Result<(), WireError> {
        let out = array_mut::<CONFIG_ARGS_LEN>(out, 0).ok_or(WireError::NoSpace)?;
        let [b0, b1] = self.buffer_count.to_be_bytes();
        let [f0, f1] = self.firmware.to_be_bytes();
        let [c0, c1] = self.config_len.to_be_bytes();
        *out = [
            b0,
            b1,
            f0,
            f1,
            self.sector_count,
            (self.aoe_version & 0xf) << 4 | self.command as u8,
            c0,
            c1,
        ];
        Ok(())
    }

    /// Most sectors per ATA command to this target over a link of `mtu`:
    /// what the target accepts ([`DEFAULT_SECTORS`] if it does not say),
    /// and what fits in one frame. 0 if not even one sector fits.
    pub fn max_sectors(&self, mtu: u32) -> u32 {
        max_sectors(self.sector_count, mtu)
    }
}

/// Most sectors per ATA command to a target whose Query Config answer said
/// `sector_count` ([`DEFAULT_SECTORS`] for 0, unspecified), over a link of
/// `mtu`; 0 if not even one sector fits (see [`ConfigArgs::max_sectors`]).
pub fn max_sectors(sector_count: u8, mtu: u32) -> u32 {
    let target = if sector_count == 0 {
        DEFAULT_SECTORS
    } else {
        sector_count
    };
    sectors_per_frame(mtu).min(u32::from(target))
}

/// The arguments of a response, by command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// An ATA response; data (if any) starts at [`ATA_HEADER_LEN`].
    Ata(AtaArgs),
    /// A Query Config response; the config string starts at
    /// [`CONFIG_HEADER_LEN`].
    Config(ConfigArgs),
}

/// A response from a target, checked as far as the frame alone allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response {
    /// The common header: who answered, and the tag.
    pub common: Common,
    /// The arguments.
    pub body: Body,
    /// Bytes present after the headers (data or config string, plus any
    /// padding).
    pub payload_len: usize,
}

/// What an ATA response says happened to the request it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtaOutcome {
    /// Done. A read or IDENTIFY answer carries `data_len` bytes of data at
    /// [`ATA_HEADER_LEN`] (exactly what was asked; anything after them is
    /// padding); other answers carry none.
    Done {
        /// Bytes of data at [`ATA_HEADER_LEN`].
        data_len: usize,
    },
    /// The target refused the command ([`FLAG_ERROR`]); `error` is its raw
    /// error byte ([`ErrorCode::from_u8`]).
    Refused {
        /// The response's error byte.
        error: u8,
    },
    /// The ATA command failed ([`STATUS_FAILED`]): the device's status and
    /// error registers. Any data the frame holds is not to be used.
    Failed {
        /// The status register.
        status: u8,
        /// The error register (`ATA_ERROR_*`).
        error: u8,
    },
}

impl Response {
    /// Parses and validates a response at the start of `frame` (the bytes
    /// after the Ethernet header). Trailing bytes are kept in
    /// [`Response::payload_len`], not refused: they may be Ethernet padding.
    pub fn parse(frame: &[u8]) -> Result<Self, WireError> {
        Self::parse_head(frame, frame.len())
    }

    /// Like [`Response::parse`], for receivers whose frame is not contiguous
    /// (a paged socket buffer): `head` is the start of the frame, holding at
    /// least the headers of its command, and `frame_len` the length of the
    /// whole frame. Data and config string are then read from the frame by
    /// offset.
    pub fn parse_head(head: &[u8], frame_len: usize) -> Result<Self, WireError> {
        if head.len() > frame_len {
            return Err(WireError::BadLength);
        }
        let raw = raw_common(head)?;
        if raw[0] & FLAG_RESPONSE == 0 {
            return Err(WireError::NotResponse);
        }
        let common = Common::from_raw(raw)?;
        if common.major == MAJOR_ANY || common.minor == MINOR_ANY {
            return Err(WireError::BadAddress);
        }
        let args = head.get(COMMON_LEN..).ok_or(WireError::Short)?;
        let (body, header_len) = match common.command {
            Command::Ata => (Body::Ata(AtaArgs::parse(args)?), ATA_HEADER_LEN),
            Command::QueryConfig => (Body::Config(ConfigArgs::parse(args)?), CONFIG_HEADER_LEN),
        };
        // `head` holds the headers and the frame holds `head`.
        let payload_len = frame_len.checked_sub(header_len).ok_or(WireError::Short)?;
        if let Body::Config(c) = body {
            let len = usize::from(c.config_len);
            if len > MAX_CONFIG_LEN || len > payload_len {
                return Err(WireError::BadLength);
            }
        }
        Ok(Response { common, body, payload_len })
    }

    /// Offset of the data or config string in the frame.
    pub const fn header_len(&self) -> usize {
        match self.body {
            Body::Ata(_) => ATA_HEADER_LEN,
            Body::Config(_) => CONFIG_HEADER_LEN,
        }
    }

    /// The config string of a Query Config response, from the frame it was
    /// parsed from; `None` for an ATA response or if `frame` is not whole.
    pub fn config_string<'a>(&self, frame: &'a [u8]) -> Option<&'a [u8]> {
        match self.body {
            Body::Config(c) => {
                frame.get(CONFIG_HEADER_LEN..CONFIG_HEADER_LEN + usize::from(c.config_len))
            }
            Body::Ata(_) => None,
        }
    }

    /// What this response says about `sent`, the request the initiator
    /// matched it to by tag. Refuses a response that does not answer `sent`
    /// ([`WireError::Mismatch`]: another command, tag or target) and a
    /// successful read or IDENTIFY answer that does not carry all the data
    /// asked for ([`WireError::BadLength`]). The response's sector count and
    /// LBA are not compared with the request's: `vblade` rewrites the count,
    /// and real ATA devices may leave anything in those registers.
    pub fn ata_outcome(&self, sent: &AtaRequest) -> Result<AtaOutcome, WireError> {
        let Body::Ata(args) = self.body else {
            return Err(WireError::Mismatch);
        };
        if self.common.tag != sent.tag || self.common.major != sent.major || self.common.minor != sent.minor {
            return Err(WireError::Mismatch);
        }
        if self.common.is_error() {
            return Ok(AtaOutcome::Refused { error: self.common.error });
        }
        if args.failed() {
            return Ok(AtaOutcome::Failed { status: args.cmd_status, error: args.err_feature });
        }
        let data_len = sent.response_data_len();
        if self.payload_len < data_len {
            return Err(WireError::BadLength);
        }
        Ok(AtaOutcome::Done { data_len })
    }

    /// Writes the headers of this response into the first
    /// [`Response::header_len`] bytes of `out` (a target's view; the host
    /// tests build responses with it). `payload_len` is not encoded: it is
    /// what the frame holds after the headers.
    pub fn encode(&self, out: &mut [u8]) -> Result<(), WireError> {
        if out.len() < self.header_len() {
            return Err(WireError::NoSpace);
        }
        self.common.encode(out)?;
        let args = out.get_mut(COMMON_LEN..).ok_or(WireError::NoSpace)?;
        match self.body {
            Body::Ata(a) => a.encode(args),
            Body::Config(c) => c.encode(args),
        }
    }
}

/// How many whole sectors fit in one frame after the [`ATA_HEADER_LEN`]
/// bytes of headers on a link of `mtu` (the Ethernet payload size); 0 if
/// none. (`vblade` and the Linux `aoe` driver subtract 36 instead of 22,
/// counting the Ethernet header the MTU does not include, so they may allow
/// one sector fewer; a target's Query Config answer caps this anyway, see
/// [`ConfigArgs::max_sectors`].) Never more than 255, the most one ATA
/// argument header can count.
pub const fn sectors_per_frame(mtu: u32) -> u32 {
    let room = mtu.saturating_sub(ATA_HEADER_LEN as u32) / SECTOR_SIZE;
    if room > u8::MAX as u32 {
        u8::MAX as u32
    } else {
        room
    }
}

/// Reads little-endian word `word` of an IDENTIFY block.
fn identify_word(data: &[u8], word: usize) -> Option<u16> {
    array::<2>(data, word.checked_mul(2)?).map(|w| u16::from_le_bytes(*w))
}

/// Capacity in sectors from a 512-byte IDENTIFY DEVICE block (words are
/// little-endian `u16`): the 48-bit total (words 100..=103) if word 83
/// bit 10 announces the 48-bit address feature set, else the 28-bit total
/// (words 60..=61). `None` if the block is short, reports zero, or reports
/// more than its address width can reach (more than [`LBA48_LIMIT`] or
/// [`LBA28_LIMIT`] sectors): a sector beyond could never be addressed.
pub fn identify_sectors(data: &[u8]) -> Option<u64> {
    if data.len() < SECTOR_SIZE as usize {
        return None;
    }
    let (total, limit) = if identify_word(data, 83)? & (1 << 10) != 0 {
        let mut total = 0u64;
        for word in (100..=103).rev() {
            total = total << 16 | u64::from(identify_word(data, word)?);
        }
        (total, LBA48_LIMIT)
    } else {
        let low = u64::from(identify_word(data, 60)?);
        let high = u64::from(identify_word(data, 61)?);
        (high << 16 | low, LBA28_LIMIT)
    };
    if total == 0 || total > limit {
        None
    } else {
        Some(total)
    }
}
