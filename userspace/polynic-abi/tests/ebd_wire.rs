//! Host tests of the EBD wire format: round trips, each refusal reason, and
//! properties over arbitrary bytes (parsing never panics, never returns more
//! payload than the frame holds).

use polynic_abi::ebd::*;
use proptest::prelude::*;

fn read_request() -> Header {
    Header {
        opcode: Opcode::Read,
        flags: 0,
        tag: 7,
        generation: 3,
        export: 1,
        status: Status::Ok,
        offset: 4096,
        length: 16384,
        frag_offset: 0,
        frag_len: 0,
    }
}

fn frame(h: &Header, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; HEADER_LEN + payload.len()];
    h.encode(&mut f).unwrap();
    f[HEADER_LEN..].copy_from_slice(payload);
    f
}

#[test]
fn request_round_trips_field_by_field() {
    let h = Header { flags: FLAG_FUA, opcode: Opcode::Write, frag_offset: 8192, frag_len: 1024, ..read_request() };
    let data = vec![0xa5; 1024];
    let f = frame(&h, &data);
    let (parsed, payload) = Header::parse(&f, Direction::Request).unwrap();
    assert_eq!(parsed, h);
    assert_eq!(payload, &data[..]);
}

#[test]
fn wire_layout_is_big_endian_at_documented_offsets() {
    let h = Header { tag: 0x0102_0304, offset: 0x0000_0000_0000_1200, ..read_request() };
    let f = frame(&h, &[]);
    assert_eq!(f[0], VERSION);
    assert_eq!(f[1], Opcode::Read as u8);
    assert_eq!(&f[4..8], &[1, 2, 3, 4]);
    assert_eq!(&f[16..24], &[0, 0, 0, 0, 0, 0, 0x12, 0]);
}

#[test]
fn trailing_padding_is_not_payload() {
    // A read request has no payload; Ethernet pads short frames to 60 bytes.
    let mut f = frame(&read_request(), &[]);
    f.resize(60, 0);
    let (_, payload) = Header::parse(&f, Direction::Request).unwrap();
    assert!(payload.is_empty());
}

#[test]
fn read_response_carries_its_fragment() {
    let h = Header { frag_offset: 1024, frag_len: 512, ..read_request() };
    let f = frame(&h, &[9; 512]);
    let (_, payload) = Header::parse(&f, Direction::Response).unwrap();
    assert_eq!(payload.len(), 512);
    // The same frame as an error response carries nothing.
    let e = Header { status: Status::IoError, ..h };
    let f = frame(&e, &[]);
    let (parsed, payload) = Header::parse(&f, Direction::Response).unwrap();
    assert_eq!(parsed.status, Status::IoError);
    assert!(payload.is_empty());
}

#[test]
fn every_refusal_reason() {
    let good = frame(&read_request(), &[]);
    assert_eq!(Header::parse(&good[..HEADER_LEN - 1], Direction::Request), Err(WireError::Short));

    let mut f = good.clone();
    f[0] = 2;
    assert_eq!(Header::parse(&f, Direction::Request), Err(WireError::BadVersion));

    let mut f = good.clone();
    f[1] = 0;
    assert_eq!(Header::parse(&f, Direction::Request), Err(WireError::BadOpcode));
    f[1] = 7;
    assert_eq!(Header::parse(&f, Direction::Request), Err(WireError::BadOpcode));

    let mut f = good.clone();
    f[3] = 0x80;
    assert_eq!(Header::parse(&f, Direction::Request), Err(WireError::BadFlags));

    let mut f = good.clone();
    f[15] = 1;
    assert_eq!(Header::parse(&f, Direction::Request), Err(WireError::BadStatus));
    f[15] = 99;
    assert_eq!(Header::parse(&f, Direction::Response), Err(WireError::BadStatus));

    // Write fragment announcing more payload than the frame holds.
    let w = Header { opcode: Opcode::Write, frag_len: 1024, ..read_request() };
    let f = frame(&w, &[0; 1024]);
    assert_eq!(Header::parse(&f[..f.len() - 1], Direction::Request), Err(WireError::BadLength));

    // Fragment beyond the request.
    let h = Header { frag_offset: 16384, frag_len: 512, ..read_request() };
    assert_eq!(Header::parse(&frame(&h, &[]), Direction::Request), Err(WireError::BadRange));
    // Fragment end overflowing u32.
    let h = Header { frag_offset: u32::MAX, frag_len: 2, ..read_request() };
    assert_eq!(Header::parse(&frame(&h, &[]), Direction::Request), Err(WireError::BadRange));
    // Unaligned offset and length, oversized request, offset overflow.
    for h in [
        Header { offset: 100, ..read_request() },
        Header { length: 1000, ..read_request() },
        Header { length: MAX_REQUEST_LEN + SECTOR_SIZE, ..read_request() },
        Header { offset: u64::MAX - 511, ..read_request() },
    ] {
        assert_eq!(Header::parse(&frame(&h, &[]), Direction::Request), Err(WireError::BadRange), "{h:?}");
    }
    // Flush addresses no range.
    let h = Header { opcode: Opcode::Flush, length: 0, offset: 512, ..read_request() };
    assert_eq!(Header::parse(&frame(&h, &[]), Direction::Request), Err(WireError::BadRange));
}

#[test]
fn encode_refuses_short_buffers() {
    let mut small = [0u8; HEADER_LEN - 1];
    assert_eq!(read_request().encode(&mut small), Err(WireError::NoSpace));
    let info = ExportInfo { size: 1 << 30, block_size: 4096, flags: EXPORT_FLUSH };
    assert_eq!(info.encode(&mut [0u8; 15]), Err(WireError::NoSpace));
}

#[test]
fn export_info_round_trips_and_validates() {
    let info = ExportInfo { size: 256 << 20, block_size: 4096, flags: EXPORT_FLUSH | EXPORT_DISCARD };
    let mut b = [0u8; ExportInfo::LEN];
    info.encode(&mut b).unwrap();
    assert_eq!(ExportInfo::parse(&b), Ok(info));
    assert_eq!(ExportInfo::parse(&b[..15]), Err(WireError::Short));
    for bad in [
        ExportInfo { block_size: 1000, ..info },
        ExportInfo { block_size: 256, ..info },
        ExportInfo { block_size: 8192, ..info },
        ExportInfo { size: 1000, ..info },
    ] {
        bad.encode(&mut b).unwrap();
        assert_eq!(ExportInfo::parse(&b), Err(WireError::BadRange), "{bad:?}");
    }
}

#[test]
fn payload_per_frame_is_whole_sectors() {
    assert_eq!(payload_per_frame(9000), Some(8704));
    assert_eq!(payload_per_frame(1500), Some(1024));
    assert_eq!(payload_per_frame(HEADER_LEN as u32 + 511), None);
    assert_eq!(payload_per_frame(10), None);
}

proptest! {
    #[test]
    fn parse_never_panics_and_bounds_payload(bytes in proptest::collection::vec(any::<u8>(), 0..200), resp in any::<bool>()) {
        let dir = if resp { Direction::Response } else { Direction::Request };
        if let Ok((h, payload)) = Header::parse(&bytes, dir) {
            prop_assert!(payload.len() <= bytes.len() - HEADER_LEN);
            prop_assert!(h.frag_offset as u64 + h.frag_len as u64 <= h.length as u64);
        }
    }

    #[test]
    fn valid_writes_round_trip(tag in any::<u32>(), generation in any::<u32>(), sector in 0u64..(1 << 40),
                               sectors in 1u32..=(MAX_REQUEST_LEN / SECTOR_SIZE), frag in 0u32..64) {
        let length = sectors * SECTOR_SIZE;
        let frag_len = (frag * 8).min(length);
        let h = Header { opcode: Opcode::Write, tag, generation, offset: sector * 512, length,
                         frag_offset: length - frag_len, frag_len, ..read_request() };
        let f = frame(&h, &vec![1; frag_len as usize]);
        let (parsed, payload) = Header::parse(&f, Direction::Request).unwrap();
        prop_assert_eq!(parsed, h);
        prop_assert_eq!(payload.len(), frag_len as usize);
    }
}
