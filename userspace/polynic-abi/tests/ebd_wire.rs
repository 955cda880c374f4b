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
        seq: 3,
        export: 1,
        status: Status::Ok,
        offset: 4096,
        length: 16384,
        frag_offset: 0,
        frag_len: 4096,
        session: 0x5e55_1011,
        finished: Finished { below: 2, mask: 0b101 },
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
    f.resize(HEADER_LEN + 20, 0);
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
    f[0] = 1;
    assert_eq!(Header::parse(&f, Direction::Request), Err(WireError::BadVersion));

    let mut f = good.clone();
    f[HEADER_LEN - 1] = 1;
    assert_eq!(Header::parse(&f, Direction::Request), Err(WireError::BadReserved));
    let h = Header { session: 0, ..read_request() };
    assert_eq!(Header::parse(&frame(&h, &[]), Direction::Request), Err(WireError::BadReserved));
    // Responses are matched by the client, which checks their session.
    let h = Header { status: Status::IoError, ..h };
    assert!(Header::parse(&frame(&h, &[]), Direction::Response).is_ok());

    let mut f = good.clone();
    f[1] = 0;
    assert_eq!(Header::parse(&f, Direction::Request), Err(WireError::BadOpcode));
    f[1] = 9;
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

    // A read asking for more than MAX_FRAGMENTS response frames, or none.
    let h = Header { length: MAX_REQUEST_LEN, frag_len: 512, ..read_request() };
    assert_eq!(Header::parse(&frame(&h, &[]), Direction::Request), Err(WireError::BadRange));
    let h = Header { frag_len: 0, ..read_request() };
    assert_eq!(Header::parse(&frame(&h, &[]), Direction::Request), Err(WireError::BadRange));
    let h = Header { length: MAX_REQUEST_LEN, frag_len: MAX_REQUEST_LEN / MAX_FRAGMENTS, ..read_request() };
    assert!(Header::parse(&frame(&h, &[]), Direction::Request).is_ok());

    // Fragment beyond the request.
    let h = Header { frag_offset: 16384, frag_len: 512, ..read_request() };
    assert_eq!(Header::parse(&frame(&h, &[]), Direction::Request), Err(WireError::BadRange));
    // Fragment end overflowing u32.
    let h = Header { frag_offset: u32::MAX, frag_len: 2, ..read_request() };
    assert_eq!(Header::parse(&frame(&h, &[]), Direction::Request), Err(WireError::BadRange));
    // Unaligned offset and length, oversized request, offset overflow.
    for h in [
        Header { offset: 100, ..read_request() },
        Header { length: 1000, frag_len: 1000, ..read_request() },
        Header { length: MAX_REQUEST_LEN + SECTOR_SIZE, ..read_request() },
        Header { offset: u64::MAX - 511, ..read_request() },
    ] {
        assert_eq!(Header::parse(&frame(&h, &[]), Direction::Request), Err(WireError::BadRange), "{h:?}");
    }
    // Flush addresses no range.
    let h = Header { opcode: Opcode::Flush, length: 0, frag_len: 0, offset: 512, ..read_request() };
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
    fn valid_writes_round_trip(tag in any::<u32>(), seq in any::<u32>(), sector in 0u64..(1 << 40),
                               sectors in 1u32..=(MAX_REQUEST_LEN / SECTOR_SIZE), frag in 0u32..64) {
        let length = sectors * SECTOR_SIZE;
        let frag_len = (frag * 8).min(length);
        let h = Header { opcode: Opcode::Write, tag, seq, offset: sector * 512, length,
                         frag_offset: length - frag_len, frag_len, ..read_request() };
        let f = frame(&h, &vec![1; frag_len as usize]);
        let (parsed, payload) = Header::parse(&f, Direction::Request).unwrap();
        prop_assert_eq!(parsed, h);
        prop_assert_eq!(payload.len(), frag_len as usize);
    }
}

#[test]
fn session_and_finished_window_round_trip_at_their_offsets() {
    let h = Header { finished: Finished { below: 0x0102_0304, mask: 1 << 127 | 1 }, ..read_request() };
    let f = frame(&h, &[]);
    assert_eq!(&f[36..40], &0x5e55_1011u32.to_be_bytes());
    assert_eq!(&f[40..44], &[1, 2, 3, 4]);
    assert_eq!(f[44], 0x80);
    assert_eq!(f[59], 1);
    assert_eq!(Header::parse(&f, Direction::Request).unwrap().0, h);
}

#[test]
fn finished_requests_advance_the_window_in_any_order() {
    let mut w = Finished::starting_at(10);
    assert!(!w.contains(10) && w.contains(9) && w.admits(10) && w.admits(10 + FINISHED_SPAN - 1));
    assert!(!w.admits(10 + FINISHED_SPAN) && !w.admits(9));
    w.finish(12);
    w.finish(11);
    assert_eq!(w, Finished { below: 10, mask: 0b11 });
    assert!(w.contains(11) && w.contains(12) && !w.contains(13));
    w.finish(10);
    assert_eq!(w, Finished::starting_at(13));
    // Outside the span: ignored, never a shift past an unfinished request.
    w.finish(13 + FINISHED_SPAN);
    assert_eq!(w, Finished::starting_at(13));
}

#[test]
fn the_window_wraps_around_the_sequence_space() {
    let mut w = Finished::starting_at(u32::MAX);
    w.finish(0);
    assert!(w.contains(0) && !w.contains(u32::MAX) && w.contains(u32::MAX - 1));
    w.finish(u32::MAX);
    assert_eq!(w, Finished::starting_at(1));
}

#[test]
fn v1_clients_get_a_version_1_refusal_of_their_info_request() {
    let mut req = [0u8; V1_HEADER_LEN];
    req[0] = 1;
    req[1] = Opcode::Info as u8;
    req[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    let mut out = [0xffu8; 64];
    assert_eq!(v1_refusal(&req, &mut out), Some(V1_HEADER_LEN));
    assert_eq!(out[0], 1);
    assert_eq!(&out[4..8], &u32::MAX.to_be_bytes());
    assert_eq!(&out[14..16], &(Status::Unsupported as u16).to_be_bytes());
    assert_eq!(peek_version(&out), Some(1));
    // Only version 1 Info requests are answered.
    req[1] = Opcode::Read as u8;
    assert_eq!(v1_refusal(&req, &mut out), None);
    assert_eq!(v1_refusal(&req[..10], &mut out), None);
}

proptest! {
    /// Merging is a union: whatever order frames arrive in, the merged
    /// window contains exactly what any of them contained.
    #[test]
    fn merge_is_the_union(start in any::<u32>(), done in proptest::collection::vec(0u32..200, 0..80),
                          cut in 0usize..80) {
        let mut client = Finished::starting_at(start);
        let mut snapshots = Vec::new();
        for (i, d) in done.iter().enumerate() {
            let seq = start.wrapping_add(*d);
            if client.admits(seq) {
                client.finish(seq);
            }
            if i == cut.min(done.len().saturating_sub(1)) || i % 7 == 0 {
                snapshots.push(client);
            }
        }
        snapshots.push(client);
        let mut server = Finished::starting_at(start);
        for s in snapshots.iter().rev() {
            server.merge(s);
        }
        prop_assert_eq!(server, client);
        for probe in 0u32..300 {
            let seq = start.wrapping_add(probe);
            prop_assert_eq!(server.contains(seq), client.contains(seq));
        }
    }
}
