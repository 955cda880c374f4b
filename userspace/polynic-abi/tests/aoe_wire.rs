//! Host tests of the AoE wire format: the layout at its documented offsets,
//! round trips, responses shaped as `vblade` 25 sends them, each refusal
//! reason, and properties over arbitrary bytes (parsing never panics, never
//! announces bytes the frame does not hold).

use polynic_abi::aoe::*;
use proptest::prelude::*;

const SHELF: u16 = 7;
const SLOT: u8 = 3;

fn encode_request(req: &AtaRequest, data: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; ATA_HEADER_LEN + data.len()];
    req.encode(&mut f).unwrap();
    f[ATA_HEADER_LEN..].copy_from_slice(data);
    f
}

fn common(flags: u8, command: Command, tag: u32) -> Common {
    Common { flags, error: 0, major: SHELF, minor: SLOT, command, tag }
}

/// The response `vblade` sends to `req`: same tag and LBA bytes, its own
/// address, the sector count rewritten to what is left to do (0), DRDY, and
/// the data (or the echo of the request's first bytes, for answers without
/// data, which it always sends as 60-byte Ethernet frames).
fn vblade_answer(req: &AtaRequest, data: &[u8]) -> Vec<u8> {
    let args = AtaArgs { sector_count: 0, cmd_status: STATUS_DRDY, err_feature: 0, ..req.args().unwrap() };
    let resp = Response { common: common(FLAG_RESPONSE, Command::Ata, req.tag), body: Body::Ata(args), payload_len: 0 };
    let payload = if data.is_empty() { 60 - 14 - ATA_HEADER_LEN } else { data.len() };
    let mut f = vec![0x5a; ATA_HEADER_LEN + payload];
    resp.encode(&mut f).unwrap();
    f[ATA_HEADER_LEN..ATA_HEADER_LEN + data.len()].copy_from_slice(data);
    f
}

fn config_response(args: ConfigArgs, string: &[u8]) -> Vec<u8> {
    let resp = Response { common: common(FLAG_RESPONSE, Command::QueryConfig, 0), body: Body::Config(args), payload_len: 0 };
    let mut f = vec![0u8; CONFIG_HEADER_LEN + string.len()];
    resp.encode(&mut f).unwrap();
    f[CONFIG_HEADER_LEN..].copy_from_slice(string);
    f
}

/// What `vblade` 25 answers a Query Config read with on a 9000-byte MTU.
fn vblade_config() -> ConfigArgs {
    ConfigArgs {
        buffer_count: 16,
        firmware: 0x4019,
        sector_count: ((9000 - 36) / 512) as u8,
        aoe_version: 1,
        command: ConfigCommand::Read,
        config_len: 0,
    }
}

/// An IDENTIFY block laid out as `vblade` builds it for `size` sectors.
fn vblade_identify(size: u64) -> [u8; 512] {
    let mut id = [0u8; 512];
    let mut set = |word: usize, v: u16| id[word * 2..word * 2 + 2].copy_from_slice(&v.to_le_bytes());
    set(49, 0x0200);
    set(83, 0x5400);
    set(86, 0x1400);
    let lba28 = size.min(0x0fff_ffff);
    set(60, lba28 as u16);
    set(61, (lba28 >> 16) as u16);
    for (i, w) in (100..=103).enumerate() {
        set(w, (size >> (16 * i)) as u16);
    }
    id
}

#[test]
fn ata_request_layout_is_at_documented_offsets() {
    let req = AtaRequest::read(0x0102, 0x03, 0x0405_0607, 0x0a0b_0c0d_0e0f, 17);
    let f = encode_request(&req, &[]);
    assert_eq!(f.len(), ATA_HEADER_LEN);
    assert_eq!(f[0], 0x10, "version 1, no flags");
    assert_eq!(f[1], 0, "error");
    assert_eq!(&f[2..4], &[1, 2], "major big-endian");
    assert_eq!(f[4], 3);
    assert_eq!(f[5], Command::Ata as u8);
    assert_eq!(&f[6..10], &[4, 5, 6, 7], "tag big-endian");
    assert_eq!(f[10], AFLAG_EXTENDED);
    assert_eq!(f[11], 0, "feature");
    assert_eq!(f[12], 17, "sector count");
    assert_eq!(f[13], ATA_READ_SECTORS_EXT);
    assert_eq!(&f[14..20], &[0x0f, 0x0e, 0x0d, 0x0c, 0x0b, 0x0a], "LBA little-endian");
    assert_eq!(&f[20..22], &[0, 0], "reserved");

    let f = encode_request(&AtaRequest::write(1, 2, 3, 4, 1), &[0; 512]);
    assert_eq!((f[10], f[13]), (AFLAG_EXTENDED | AFLAG_WRITE, ATA_WRITE_SECTORS_EXT));
    // The 28-bit commands carry the legacy device/head value in LBA byte 3,
    // as the Linux aoe driver sends IDENTIFY.
    let f = encode_request(&AtaRequest::identify(1, 2, 3), &[]);
    assert_eq!((f[10], f[12], f[13]), (0, 1, ATA_IDENTIFY_DEVICE));
    assert_eq!(&f[14..20], &[0, 0, 0, DEVICE_HEAD_LEGACY, 0, 0]);
    let f = encode_request(&AtaRequest::flush(1, 2, 3), &[]);
    assert_eq!((f[10], f[12], f[13]), (0, 0, ATA_FLUSH_CACHE));
    let ext = AtaRequest { op: AtaOp::FlushExt, ..AtaRequest::flush(1, 2, 3) };
    let f = encode_request(&ext, &[]);
    assert_eq!((f[10], f[12], f[13]), (AFLAG_EXTENDED, 0, ATA_FLUSH_CACHE_EXT));
    assert_eq!(&f[14..20], &[0; 6]);
}

#[test]
fn every_request_round_trips() {
    for req in [
        AtaRequest::read(SHELF, SLOT, 1, 0, 1),
        AtaRequest::read(SHELF, SLOT, u32::MAX, LBA48_LIMIT - 255, 255),
        AtaRequest::write(0, 0, 2, 1 << 40, 2),
        AtaRequest::flush(MAJOR_ANY - 1, MINOR_ANY - 1, 3),
        AtaRequest { op: AtaOp::FlushExt, ..AtaRequest::flush(SHELF, SLOT, 4) },
        AtaRequest::identify(SHELF, SLOT, 5),
    ] {
        let mut f = encode_request(&req, &vec![0xa5; req.data_len()]);
        assert_eq!(AtaRequest::parse(&f), Ok(req), "{req:?}");
        // Ethernet padding does not matter.
        f.resize(f.len().max(46), 0);
        assert_eq!(AtaRequest::parse(&f), Ok(req), "{req:?}");
    }
}

#[test]
fn config_query_layout_and_round_trip() {
    let q = ConfigQuery { major: MAJOR_ANY, minor: MINOR_ANY, tag: 0x8000_0001 };
    let mut f = [0xffu8; CONFIG_HEADER_LEN];
    q.encode(&mut f).unwrap();
    assert_eq!(f[0], 0x10);
    assert_eq!(&f[2..6], &[0xff, 0xff, 0xff, Command::QueryConfig as u8]);
    assert_eq!(&f[6..10], &[0x80, 0, 0, 1]);
    assert_eq!(&f[10..18], &[0; 8], "all target fields, the version nibble, read, no string");
    assert_eq!(ConfigQuery::parse(&f), Ok(q));
}

#[test]
fn vblade_read_answer_has_count_zero_and_the_data() {
    let req = AtaRequest::read(SHELF, SLOT, 0x1234, 1000, 17);
    let data: Vec<u8> = (0..17 * 512).map(|i| i as u8).collect();
    let f = vblade_answer(&req, &data);
    let resp = Response::parse(&f).unwrap();
    assert_eq!(resp.common.tag, 0x1234);
    assert_eq!(resp.payload_len, data.len());
    let Body::Ata(args) = resp.body else { panic!("{resp:?}") };
    assert_eq!((args.sector_count, args.lba), (0, 1000));
    assert_eq!(resp.ata_outcome(&req), Ok(AtaOutcome::Done { data_len: data.len() }));
    // One byte missing: a runt, refused, though the response's own count
    // (0) would have allowed it.
    assert_eq!(Response::parse(&f[..f.len() - 1]).unwrap().ata_outcome(&req), Err(WireError::BadLength));
}

#[test]
fn vblade_answers_without_data_are_padded_echoes() {
    let w = AtaRequest::write(SHELF, SLOT, 9, 8, 2);
    let f = vblade_answer(&w, &[]);
    assert_eq!(f.len(), 46);
    let resp = Response::parse(&f).unwrap();
    assert_eq!(resp.payload_len, 24);
    assert_eq!(resp.ata_outcome(&w), Ok(AtaOutcome::Done { data_len: 0 }));

    // FLUSH CACHE: vblade answers status 0, without DRDY; that is success.
    let fl = AtaRequest::flush(SHELF, SLOT, 10);
    let mut f = vblade_answer(&fl, &[]);
    f[13] = 0;
    assert_eq!(Response::parse(&f).unwrap().ata_outcome(&fl), Ok(AtaOutcome::Done { data_len: 0 }));
}

#[test]
fn identify_answer_gives_the_capacity() {
    let req = AtaRequest::identify(SHELF, SLOT, 11);
    let id = vblade_identify(3 << 30);
    let f = vblade_answer(&req, &id);
    let resp = Response::parse(&f).unwrap();
    assert_eq!(resp.ata_outcome(&req), Ok(AtaOutcome::Done { data_len: 512 }));
    assert_eq!(identify_sectors(&f[ATA_HEADER_LEN..ATA_HEADER_LEN + 512]), Some(3 << 30));
    assert_eq!(Response::parse(&f[..ATA_HEADER_LEN + 511]).unwrap().ata_outcome(&req), Err(WireError::BadLength));
}

#[test]
fn failures_are_outcomes_not_refusals() {
    // Beyond the end: ATA status ERR, IDNF, AoE error flag clear, no data.
    let req = AtaRequest::read(SHELF, SLOT, 12, 1 << 30, 2);
    let mut f = vblade_answer(&req, &[]);
    f.truncate(ATA_HEADER_LEN);
    f[11] = ATA_ERROR_IDNF;
    f[12] = 2;
    f[13] = STATUS_DRDY | STATUS_ERR;
    let resp = Response::parse(&f).unwrap();
    assert_eq!(resp.ata_outcome(&req), Ok(AtaOutcome::Failed { status: 0x41, error: ATA_ERROR_IDNF }));
    // Unsupported ATA command (vblade: FLUSH CACHE EXT): ABRT.
    f[11] = ATA_ERROR_ABRT;
    assert_eq!(
        Response::parse(&f).unwrap().ata_outcome(&req),
        Ok(AtaOutcome::Failed { status: 0x41, error: ATA_ERROR_ABRT })
    );
    // Each failure bit fails, DRDY alone does not.
    for bit in [STATUS_BSY, STATUS_DF, STATUS_DRQ, STATUS_ERR] {
        f[13] = bit;
        assert!(matches!(Response::parse(&f).unwrap().ata_outcome(&req), Ok(AtaOutcome::Failed { .. })));
    }
    // The AoE error flag: the target refused the command (too many sectors).
    let mut f = vblade_answer(&req, &[]);
    f[0] |= FLAG_ERROR;
    f[1] = ErrorCode::BadArgument as u8;
    let resp = Response::parse(&f).unwrap();
    assert_eq!(resp.common.error_code(), Some(ErrorCode::BadArgument));
    assert_eq!(resp.ata_outcome(&req), Ok(AtaOutcome::Refused { error: 2 }));
    // An undefined code is still a refusal.
    f[1] = 200;
    let resp = Response::parse(&f).unwrap();
    assert_eq!(resp.common.error_code(), None);
    assert_eq!(resp.ata_outcome(&req), Ok(AtaOutcome::Refused { error: 200 }));
}

#[test]
fn config_answer_and_its_limits() {
    let f = config_response(ConfigArgs { config_len: 5, ..vblade_config() }, b"hello");
    let resp = Response::parse(&f).unwrap();
    let Body::Config(c) = resp.body else { panic!("{resp:?}") };
    assert_eq!(c, ConfigArgs { config_len: 5, ..vblade_config() });
    assert_eq!(resp.config_string(&f), Some(&b"hello"[..]));
    assert_eq!(resp.header_len(), CONFIG_HEADER_LEN);
    assert_eq!(c.sector_count, 17);
    assert_eq!(c.max_sectors(9000), 17);
    assert_eq!(c.max_sectors(1500), 2);
    let unspecified = ConfigArgs { sector_count: 0, ..c };
    assert_eq!(unspecified.max_sectors(9000), u32::from(DEFAULT_SECTORS));
    assert_eq!(unspecified.max_sectors(500), 0);
    // An ATA response has no config string.
    let ata = Response::parse(&vblade_answer(&AtaRequest::flush(SHELF, SLOT, 1), &[])).unwrap();
    assert_eq!(ata.config_string(&f), None);
    // Longest string allowed.
    let long = vec![b'x'; MAX_CONFIG_LEN];
    let f = config_response(ConfigArgs { config_len: MAX_CONFIG_LEN as u16, ..vblade_config() }, &long);
    assert_eq!(Response::parse(&f).unwrap().config_string(&f), Some(&long[..]));
}

#[test]
fn parse_head_reads_headers_of_a_paged_frame() {
    let req = AtaRequest::read(SHELF, SLOT, 5, 0, 2);
    let f = vblade_answer(&req, &[7; 1024]);
    let resp = Response::parse_head(&f[..ATA_HEADER_LEN], f.len()).unwrap();
    assert_eq!(resp, Response::parse(&f).unwrap());
    assert_eq!(Response::parse_head(&f[..ATA_HEADER_LEN - 1], f.len()), Err(WireError::Short));
    assert_eq!(Response::parse_head(&f, f.len() - 1), Err(WireError::BadLength));
    // The config string's length is checked against the whole frame.
    let f = config_response(ConfigArgs { config_len: 3, ..vblade_config() }, b"abc");
    assert!(Response::parse_head(&f[..CONFIG_HEADER_LEN], f.len()).is_ok());
    assert_eq!(Response::parse_head(&f[..CONFIG_HEADER_LEN], f.len() - 1), Err(WireError::BadLength));
}

/// One way to reach each refusal; the match is exhaustive so that a new
/// reason cannot be added without a case here.
fn refusal_case(e: WireError) -> Result<(), WireError> {
    let read = AtaRequest::read(SHELF, SLOT, 1, 0, 2);
    let good = vblade_answer(&read, &[0; 1024]);
    let with = |at: usize, v: u8| {
        let mut f = good.clone();
        f[at] = v;
        f
    };
    match e {
        WireError::Short => {
            Response::parse(&good[..COMMON_LEN - 1])?;
            Ok(())
        }
        WireError::BadVersion => Response::parse(&with(0, 0x28)).map(drop),
        WireError::NotResponse => Response::parse(&encode_request(&read, &[])).map(drop),
        WireError::NotRequest => AtaRequest::parse(&good).map(drop),
        WireError::BadCommand => Response::parse(&with(5, 2)).map(drop),
        WireError::BadAddress => Response::parse(&with(4, MINOR_ANY)).map(drop),
        WireError::BadLength => {
            let f = config_response(ConfigArgs { config_len: 4, ..vblade_config() }, b"abc");
            Response::parse(&f).map(drop)
        }
        WireError::BadConfigCommand => {
            let mut f = config_response(vblade_config(), b"");
            f[15] = 0x15; // version 1, sub-command 5
            Response::parse(&f).map(drop)
        }
        WireError::UnsupportedAta => {
            let mut f = encode_request(&read, &[]);
            f[13] = 0x20;
            AtaRequest::parse(&f).map(drop)
        }
        WireError::BadAflags => {
            let mut f = encode_request(&read, &[]);
            f[10] |= AFLAG_WRITE;
            AtaRequest::parse(&f).map(drop)
        }
        WireError::BadSectorCount => AtaRequest::read(SHELF, SLOT, 1, 0, 0).encode(&mut [0; 64]),
        WireError::BadLba => AtaRequest::read(SHELF, SLOT, 1, LBA48_LIMIT - 1, 2).encode(&mut [0; 64]),
        WireError::Mismatch => Response::parse(&good)?.ata_outcome(&AtaRequest { tag: 2, ..read }).map(drop),
        WireError::NoSpace => read.encode(&mut [0; ATA_HEADER_LEN - 1]),
    }
}

#[test]
fn every_refusal_reason_is_reachable() {
    for e in [
        WireError::Short,
        WireError::BadVersion,
        WireError::NotResponse,
        WireError::NotRequest,
        WireError::BadCommand,
        WireError::BadAddress,
        WireError::BadLength,
        WireError::BadConfigCommand,
        WireError::UnsupportedAta,
        WireError::BadAflags,
        WireError::BadSectorCount,
        WireError::BadLba,
        WireError::Mismatch,
        WireError::NoSpace,
    ] {
        assert_eq!(refusal_case(e), Err(e));
    }
}

#[test]
fn refusals_in_detail() {
    let read = AtaRequest::read(SHELF, SLOT, 1, 0, 2);
    let good = vblade_answer(&read, &[0; 1024]);
    assert!(Response::parse(&good).is_ok());

    // Short: no common header, no ATA arguments, no config arguments.
    assert_eq!(Response::parse(&[]), Err(WireError::Short));
    assert_eq!(Response::parse(&good[..ATA_HEADER_LEN - 1]), Err(WireError::Short));
    let cfg = config_response(vblade_config(), b"");
    assert_eq!(Response::parse(&cfg[..CONFIG_HEADER_LEN - 1]), Err(WireError::Short));
    assert_eq!(AtaRequest::parse(&encode_request(&read, &[])[..ATA_HEADER_LEN - 1]), Err(WireError::Short));
    assert_eq!(Common::parse(&good[..COMMON_LEN - 1]), Err(WireError::Short));
    assert_eq!(AtaArgs::parse(&[0; ATA_ARGS_LEN - 1]), Err(WireError::Short));
    assert_eq!(ConfigArgs::parse(&[0; CONFIG_ARGS_LEN - 1]), Err(WireError::Short));

    // Versions 0 and 2 (flags intact), in either direction.
    for v in [0x08, 0x28] {
        let mut f = good.clone();
        f[0] = v;
        assert_eq!(Response::parse(&f), Err(WireError::BadVersion));
        assert_eq!(AtaRequest::parse(&f), Err(WireError::BadVersion));
    }

    // Mask (2), reserve/release (3) and vendor commands are not ours.
    for c in [2, 3, 0xf0, 0xff] {
        let mut f = good.clone();
        f[5] = c;
        assert_eq!(Response::parse(&f), Err(WireError::BadCommand));
        assert_eq!(Common::parse(&f), Err(WireError::BadCommand));
    }
    // A request of the other command.
    let mut q = [0u8; CONFIG_HEADER_LEN];
    ConfigQuery { major: 1, minor: 1, tag: 1 }.encode(&mut q).unwrap();
    assert_eq!(AtaRequest::parse(&q), Err(WireError::BadCommand));
    assert_eq!(ConfigQuery::parse(&encode_request(&read, &[])), Err(WireError::BadCommand));
    assert_eq!(ConfigQuery::parse(&cfg), Err(WireError::NotRequest));
    assert_eq!(ConfigQuery::parse(&q[..CONFIG_HEADER_LEN - 1]), Err(WireError::Short));
    q[15] = 3; // a "set"
    assert_eq!(ConfigQuery::parse(&q), Err(WireError::BadConfigCommand));

    // Responses from the broadcast shelf or slot.
    let mut f = good.clone();
    f[2..4].copy_from_slice(&MAJOR_ANY.to_be_bytes());
    assert_eq!(Response::parse(&f), Err(WireError::BadAddress));
    // ATA requests to them: every target would execute them.
    let mut out = [0u8; 64];
    assert_eq!(AtaRequest::read(MAJOR_ANY, 1, 1, 0, 1).encode(&mut out), Err(WireError::BadAddress));
    assert_eq!(AtaRequest::flush(1, MINOR_ANY, 1).encode(&mut out), Err(WireError::BadAddress));
    assert_eq!(out, [0; 64], "nothing written on refusal");
    let mut f = encode_request(&read, &[]);
    f[4] = MINOR_ANY;
    assert_eq!(AtaRequest::parse(&f), Err(WireError::BadAddress));

    // Config string: longer than the frame, or than the protocol allows.
    let too_long = vec![b'x'; MAX_CONFIG_LEN + 1];
    let f = config_response(ConfigArgs { config_len: too_long.len() as u16, ..vblade_config() }, &too_long);
    assert_eq!(Response::parse(&f), Err(WireError::BadLength));
    let f = config_response(ConfigArgs { config_len: u16::MAX, ..vblade_config() }, b"");
    assert_eq!(Response::parse(&f), Err(WireError::BadLength));
    // A write request without all its data.
    let w = AtaRequest::write(SHELF, SLOT, 1, 0, 2);
    let f = encode_request(&w, &[0; 1024]);
    assert_eq!(AtaRequest::parse(&f[..f.len() - 1]), Err(WireError::BadLength));

    // Sector counts and LBAs.
    for (req, e) in [
        (AtaRequest::write(1, 1, 1, 0, 0), WireError::BadSectorCount),
        (AtaRequest { sectors: 2, ..AtaRequest::identify(1, 1, 1) }, WireError::BadSectorCount),
        (AtaRequest { sectors: 0, ..AtaRequest::identify(1, 1, 1) }, WireError::BadSectorCount),
        (AtaRequest { sectors: 1, ..AtaRequest::flush(1, 1, 1) }, WireError::BadSectorCount),
        (AtaRequest { lba: 8, ..AtaRequest::flush(1, 1, 1) }, WireError::BadLba),
        (AtaRequest { lba: 8, ..AtaRequest::identify(1, 1, 1) }, WireError::BadLba),
        (AtaRequest::read(1, 1, 1, u64::MAX, 1), WireError::BadLba),
        (AtaRequest::read(1, 1, 1, LBA48_LIMIT, 1), WireError::BadLba),
    ] {
        assert_eq!(req.encode(&mut [0; 64]), Err(e), "{req:?}");
        assert_eq!(req.check(), Err(e), "{req:?}");
    }
    assert_eq!(AtaRequest::read(1, 1, 1, LBA48_LIMIT - 1, 1).check(), Ok(()));
    assert_eq!(AtaArgs { aflags: 0, err_feature: 0, sector_count: 0, cmd_status: 0, lba: LBA48_LIMIT }.encode(&mut [0; 12]),
               Err(WireError::BadLba));
    let mut f = encode_request(&read, &[]);
    f[12] = 0;
    assert_eq!(AtaRequest::parse(&f), Err(WireError::BadSectorCount));
    let mut f = encode_request(&AtaRequest::write(1, 1, 1, 0, 1), &[0; 512]);
    f[10] &= !AFLAG_WRITE;
    assert_eq!(AtaRequest::parse(&f), Err(WireError::BadAflags));

    // A response that does not answer the request: other target, other
    // command.
    let resp = Response::parse(&good).unwrap();
    assert_eq!(resp.ata_outcome(&AtaRequest { minor: SLOT + 1, ..read }), Err(WireError::Mismatch));
    assert_eq!(resp.ata_outcome(&AtaRequest { major: SHELF + 1, ..read }), Err(WireError::Mismatch));
    let resp = Response::parse(&cfg).unwrap();
    assert_eq!(resp.ata_outcome(&read), Err(WireError::Mismatch));

    // Encoding into short buffers.
    assert_eq!(ConfigQuery { major: 1, minor: 1, tag: 1 }.encode(&mut [0; CONFIG_HEADER_LEN - 1]), Err(WireError::NoSpace));
    assert_eq!(common(0, Command::Ata, 1).encode(&mut [0; COMMON_LEN - 1]), Err(WireError::NoSpace));
    assert_eq!(vblade_config().encode(&mut [0; CONFIG_ARGS_LEN - 1]), Err(WireError::NoSpace));
    let resp = Response::parse(&good).unwrap();
    assert_eq!(resp.encode(&mut [0; ATA_HEADER_LEN - 1]), Err(WireError::NoSpace));
}

#[test]
fn reserved_flag_bits_and_error_byte_without_flag_are_ignored() {
    let read = AtaRequest::read(SHELF, SLOT, 1, 0, 2);
    let mut f = vblade_answer(&read, &[0; 1024]);
    f[0] |= 0x3;
    f[1] = 9;
    let resp = Response::parse(&f).unwrap();
    assert!(resp.common.is_response() && !resp.common.is_error());
    assert_eq!(resp.common.error_code(), None);
    assert_eq!(resp.ata_outcome(&read), Ok(AtaOutcome::Done { data_len: 1024 }));
}

#[test]
fn identify_capacity() {
    // vblade: LBA48 announced, the 28-bit words capped.
    assert_eq!(identify_sectors(&vblade_identify(1 << 40)), Some(1 << 40));
    assert_eq!(identify_sectors(&vblade_identify(2048)), Some(2048));
    // Without LBA48 the 28-bit words count.
    let mut id = vblade_identify(0x0fff_ffff);
    id[166..168].copy_from_slice(&0x4000u16.to_le_bytes());
    id[200..208].fill(0xee);
    assert_eq!(identify_sectors(&id), Some(0x0fff_ffff));
    id[120..124].copy_from_slice(&0x1000_0000u32.to_le_bytes());
    assert_eq!(identify_sectors(&id), None, "beyond 28 bits");
    id[120..124].fill(0);
    assert_eq!(identify_sectors(&id), None, "zero");
    // LBA48 totals of zero or beyond 48 bits.
    assert_eq!(identify_sectors(&vblade_identify(0)), None);
    assert_eq!(identify_sectors(&vblade_identify(LBA48_LIMIT)), Some(LBA48_LIMIT));
    assert_eq!(identify_sectors(&vblade_identify(LBA48_LIMIT + 1)), None);
    // Short blocks.
    assert_eq!(identify_sectors(&vblade_identify(2048)[..511]), None);
    assert_eq!(identify_sectors(&[]), None);
}

#[test]
fn sectors_per_frame_counts_whole_sectors_after_22_bytes() {
    assert_eq!(sectors_per_frame(1500), 2);
    assert_eq!(sectors_per_frame(9000), 17);
    assert_eq!(sectors_per_frame(22 + 512), 1);
    assert_eq!(sectors_per_frame(22 + 511), 0);
    assert_eq!(sectors_per_frame(0), 0);
    assert_eq!(sectors_per_frame(65535), 127);
    assert_eq!(sectors_per_frame(u32::MAX), 255);
    // Where vblade's "(mtu - 36) / 512" allows one sector fewer.
    assert_eq!(sectors_per_frame(22 + 1024), 2);
}

#[test]
fn error_codes_and_commands_decode() {
    for v in 1..=6u8 {
        assert_eq!(ErrorCode::from_u8(v).map(|e| e as u8), Some(v));
    }
    assert_eq!(ErrorCode::from_u8(0), None);
    assert_eq!(ErrorCode::from_u8(7), None);
    for v in 0..=4u8 {
        assert_eq!(ConfigCommand::from_u8(v).map(|c| c as u8), Some(v));
    }
    assert_eq!(ConfigCommand::from_u8(5), None);
    assert_eq!(Command::from_u8(0), Some(Command::Ata));
    assert_eq!(Command::from_u8(1), Some(Command::QueryConfig));
    for op in [AtaOp::Read, AtaOp::Write, AtaOp::Flush, AtaOp::FlushExt, AtaOp::Identify] {
        assert_eq!(AtaOp::from_command(op.command()), Some(op));
    }
    assert_eq!(AtaOp::from_command(0x20), None);
}

fn any_op() -> impl Strategy<Value = AtaOp> {
    prop_oneof![
        Just(AtaOp::Read),
        Just(AtaOp::Write),
        Just(AtaOp::Flush),
        Just(AtaOp::FlushExt),
        Just(AtaOp::Identify)
    ]
}

fn any_config_command() -> impl Strategy<Value = ConfigCommand> {
    (0u8..=4).prop_map(|v| ConfigCommand::from_u8(v).unwrap())
}

proptest! {
    #[test]
    fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1200),
                                            cut in 0usize..1200, extra in 0usize..4) {
        if let Ok(resp) = Response::parse(&bytes) {
            prop_assert_eq!(resp.header_len() + resp.payload_len, bytes.len());
            if let Body::Config(c) = resp.body {
                prop_assert_eq!(resp.config_string(&bytes).map(<[u8]>::len), Some(usize::from(c.config_len)));
            }
            for op in [AtaOp::Read, AtaOp::Identify, AtaOp::Flush] {
                let sent = AtaRequest { op, ..AtaRequest::read(resp.common.major, resp.common.minor, resp.common.tag, 0, 255) };
                if let Ok(AtaOutcome::Done { data_len }) = resp.ata_outcome(&sent) {
                    prop_assert!(ATA_HEADER_LEN + data_len <= bytes.len());
                }
            }
        }
        let head = &bytes[..cut.min(bytes.len())];
        if let Ok(resp) = Response::parse_head(head, bytes.len() + extra) {
            prop_assert_eq!(resp.header_len() + resp.payload_len, bytes.len() + extra);
        }
        if let Ok(req) = AtaRequest::parse(&bytes) {
            prop_assert!(ATA_HEADER_LEN + req.data_len() <= bytes.len());
            prop_assert_eq!(req.check(), Ok(()));
        }
        let _ = ConfigQuery::parse(&bytes);
        let _ = Common::parse(&bytes);
        let _ = AtaArgs::parse(&bytes);
        let _ = ConfigArgs::parse(&bytes);
        if let Some(n) = identify_sectors(&bytes) {
            prop_assert!(n > 0 && n <= LBA48_LIMIT);
        }
    }

    #[test]
    fn valid_requests_round_trip(major in 0u16..MAJOR_ANY, minor in 0u8..MINOR_ANY, tag in any::<u32>(),
                                 op in any_op(), lba in 0u64..LBA48_LIMIT, sectors in 1u8..=255, pad in 0usize..40) {
        let req = match op {
            AtaOp::Read | AtaOp::Write => AtaRequest { major, minor, tag, op,
                lba: lba.min(LBA48_LIMIT - u64::from(sectors)), sectors },
            AtaOp::Identify => AtaRequest::identify(major, minor, tag),
            AtaOp::Flush | AtaOp::FlushExt => AtaRequest { op, ..AtaRequest::flush(major, minor, tag) },
        };
        let mut f = encode_request(&req, &vec![0x3c; req.data_len()]);
        f.resize(f.len() + pad, 0);
        prop_assert_eq!(AtaRequest::parse(&f), Ok(req));
        prop_assert_eq!(AtaArgs::parse(&f[COMMON_LEN..]).unwrap(), req.args().unwrap());
    }

    #[test]
    fn config_queries_round_trip(major in any::<u16>(), minor in any::<u8>(), tag in any::<u32>()) {
        let q = ConfigQuery { major, minor, tag };
        let mut f = [0u8; CONFIG_HEADER_LEN];
        q.encode(&mut f).unwrap();
        prop_assert_eq!(ConfigQuery::parse(&f), Ok(q));
    }

    #[test]
    fn valid_responses_round_trip(major in 0u16..MAJOR_ANY, minor in 0u8..MINOR_ANY, tag in any::<u32>(),
                                  flags in 0u8..16, error in any::<u8>(),
                                  aflags in any::<u8>(), err in any::<u8>(), count in any::<u8>(), status in any::<u8>(),
                                  lba in 0u64..LBA48_LIMIT, payload in 0usize..2000,
                                  bufcnt in any::<u16>(), fw in any::<u16>(), ver in 0u8..16,
                                  ccmd in any_config_command(), string in proptest::collection::vec(any::<u8>(), 0..=MAX_CONFIG_LEN),
                                  config in any::<bool>()) {
        let flags = flags | FLAG_RESPONSE;
        let (command, body, tail) = if config {
            let c = ConfigArgs { buffer_count: bufcnt, firmware: fw, sector_count: count, aoe_version: ver,
                                 command: ccmd, config_len: string.len() as u16 };
            (Command::QueryConfig, Body::Config(c), string.len() + payload % 8)
        } else {
            (Command::Ata, Body::Ata(AtaArgs { aflags, err_feature: err, sector_count: count, cmd_status: status, lba }), payload)
        };
        let resp = Response { common: Common { flags, error, major, minor, command, tag }, body, payload_len: tail };
        let mut f = vec![0u8; resp.header_len() + tail];
        resp.encode(&mut f).unwrap();
        if config {
            f[CONFIG_HEADER_LEN..CONFIG_HEADER_LEN + string.len()].copy_from_slice(&string);
        }
        let parsed = Response::parse(&f).unwrap();
        prop_assert_eq!(parsed, resp);
        if config {
            prop_assert_eq!(parsed.config_string(&f), Some(&string[..]));
        }
    }
}

proptest! {
    /// Frames that get past the first checks: valid responses and requests
    /// with a few bytes changed and cut anywhere, so the deeper checks see
    /// hostile values too.
    #[test]
    fn mutated_frames_never_panic(which in 0usize..4, edits in proptest::collection::vec((0usize..64, any::<u8>()), 0..6),
                                  cut in 0usize..2000) {
        let read = AtaRequest::read(SHELF, SLOT, 1, 0, 2);
        let mut f = match which {
            0 => vblade_answer(&read, &[1; 1024]),
            1 => config_response(ConfigArgs { config_len: 3, ..vblade_config() }, b"abc"),
            2 => encode_request(&AtaRequest::write(SHELF, SLOT, 1, 0, 2), &[2; 1024]),
            _ => vblade_answer(&AtaRequest::identify(SHELF, SLOT, 1), &vblade_identify(4096)),
        };
        for (at, v) in edits {
            if let Some(b) = f.get_mut(at) {
                *b = v;
            }
        }
        f.truncate(cut);
        if let Ok(resp) = Response::parse(&f) {
            prop_assert_eq!(resp.header_len() + resp.payload_len, f.len());
            for sent in [read, AtaRequest::identify(SHELF, SLOT, 1), AtaRequest { tag: resp.common.tag, ..read }] {
                if let Ok(AtaOutcome::Done { data_len }) = resp.ata_outcome(&sent) {
                    prop_assert!(ATA_HEADER_LEN + data_len <= f.len());
                    prop_assert_eq!(data_len, sent.response_data_len());
                }
            }
            let _ = resp.config_string(&f);
        }
        if let Ok(req) = AtaRequest::parse(&f) {
            prop_assert!(ATA_HEADER_LEN + req.data_len() <= f.len());
            let mut again = vec![0u8; ATA_HEADER_LEN];
            prop_assert_eq!(req.encode(&mut again), Ok(()));
        }
        let _ = ConfigQuery::parse(&f);
        let _ = identify_sectors(f.get(ATA_HEADER_LEN..).unwrap_or(&[]));
    }
}
