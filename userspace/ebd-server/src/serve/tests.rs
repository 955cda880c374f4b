//! Request handling, driven frame by frame without a network.

use super::*;
use crate::{
    access::AllowRule,
    export::ExportSpec,
    outbox::{OUTBOX_BYTES, OUTBOX_FRAMES, RETAINED_BYTES},
};
use polynic_abi::ebd::{ETH_P_EBD_REQUEST, MAX_FRAGMENTS, MAX_REQUEST_LEN};
use std::{
    io::Write,
    sync::{Arc, Mutex},
};

const CLIENT: [u8; 6] = [2, 0, 0, 0, 0, 1];
const OTHER: [u8; 6] = [2, 0, 0, 0, 0, 3];
const SERVER: [u8; 6] = [2, 0, 0, 0, 0, 2];

/// What a test server logged.
type Log = Arc<Mutex<Vec<String>>>;

/// Byte `i` of every test export.
fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

/// A service over one export per `(size, read_only)`, with `rules`,
/// answering reads from mappings of the exports.
fn service(exports: &[(usize, bool)], rules: &[AllowRule]) -> (Arc<Service>, Vec<tempfile::NamedTempFile>, Log) {
    service_with(exports, rules, true)
}

/// As [`service`]; with `map` false, reads copy.
fn service_with(
    exports: &[(usize, bool)],
    rules: &[AllowRule],
    map: bool,
) -> (Arc<Service>, Vec<tempfile::NamedTempFile>, Log) {
    let mut files = Vec::new();
    let mut opened = Vec::new();
    for &(size, read_only) in exports {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let data: Vec<u8> = (0..size).map(pattern).collect();
        f.write_all(&data).unwrap();
        opened.push(Export::open_with(&ExportSpec { path: f.path().into(), read_only }, map).unwrap());
        files.push(f);
    }
    let log: Log = Arc::default();
    let l = log.clone();
    let notices = Notices::to(Box::new(move |s| l.lock().unwrap().push(s.to_string())));
    let access = Access::new(rules, exports.len()).unwrap();
    (Arc::new(Service::new(opened, access, notices)), files, log)
}

fn server(size: usize, read_only: bool) -> (Server, tempfile::NamedTempFile) {
    let (service, mut files, _) = service(&[(size, read_only)], &[]);
    (Server::new(service, SERVER, 1500).unwrap(), files.remove(0))
}

/// An Ethernet frame from `src` to `dst` carrying `ebd` (an EBD header and
/// whatever follows).
fn frame(dst: [u8; 6], src: [u8; 6], ebd: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ETH_P_EBD_REQUEST.to_be_bytes());
    f.extend_from_slice(ebd);
    f
}

fn encoded(h: Header, payload: &[u8]) -> Vec<u8> {
    let mut e = vec![0; HEADER_LEN];
    h.encode(&mut e).unwrap();
    e.extend_from_slice(payload);
    e
}

fn request(h: Header, payload: &[u8]) -> Vec<u8> {
    frame(SERVER, CLIENT, &encoded(h, payload))
}

fn header(opcode: Opcode, offset: u64, length: u32, frag_offset: u32, frag_len: u32) -> Header {
    Header {
        opcode,
        flags: 0,
        tag: 7,
        seq: 3,
        export: 0,
        status: Status::Ok,
        offset,
        length,
        frag_offset,
        frag_len,
        session: 0x5e55,
        finished: Finished::starting_at(3),
    }
}

/// `h` as request `seq` of a client that has finished every request
/// before `below`.
fn in_seq(h: Header, seq: u32, below: u32) -> Header {
    Header { seq, finished: Finished::starting_at(below), ..h }
}

/// Runs one batch; returns every frame sent, checking the outbox's bounds
/// each time it is sent.
fn run(s: &mut Server, frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out = Outbox::new();
    let mut sent = Vec::new();
    s.handle_batch(frames.iter().map(|f| &f[..]), &mut out, &mut |o: &Outbox| {
        assert!(o.count() <= OUTBOX_FRAMES && o.allocated() <= OUTBOX_BYTES);
        sent.extend(o.frames().map(|f| f.to_vec()));
    });
    sent
}

fn one(s: &mut Server, frame: Vec<u8>) -> Vec<Vec<u8>> {
    run(s, &[frame])
}

/// Parses responses, checking they go from the server to `to`.
fn responses_to(to: [u8; 6], sent: &[Vec<u8>]) -> Vec<(Header, Vec<u8>)> {
    sent.iter()
        .map(|f| {
            assert_eq!(&f[0..6], &to);
            assert_eq!(&f[6..12], &SERVER);
            assert_eq!(&f[12..14], &ETH_P_EBD_RESPONSE.to_be_bytes());
            let (h, p) = Header::parse(&f[ETH_HLEN..], Direction::Response).unwrap();
            (h, p.to_vec())
        })
        .collect()
}

fn responses(sent: &[Vec<u8>]) -> Vec<(Header, Vec<u8>)> {
    responses_to(CLIENT, sent)
}

fn statuses(sent: &[Vec<u8>]) -> Vec<Status> {
    responses(sent).iter().map(|(h, _)| h.status).collect()
}

/// Reads answered from a mapping and reads copied give the same frames,
/// also after another thread wrote the export (the mapping is shared) and
/// once sending from the mapping was stopped.
#[test]
fn mapped_and_copied_reads_answer_alike() {
    let reads = |s: &mut Server| {
        let mut all = Vec::new();
        for (offset, len, unit) in [(0, 512, 512), (4096, 2560, 1024), (512, 65536 - 1024, 8704), (65024, 512, 512)] {
            all.push(one(s, request(header(Opcode::Read, offset, len, 0, unit), &[])));
        }
        all
    };
    let (mapped, files, _) = service_with(&[(1 << 16, false)], &[], true);
    let (copied, _copied_files, _) = service_with(&[(1 << 16, false)], &[], false);
    let (mut m, mut c) = (Server::new(mapped.clone(), SERVER, 9000).unwrap(), Server::new(copied, SERVER, 9000).unwrap());
    assert!(mapped.exports[0].mapping().is_some());
    let before = reads(&mut m);
    assert_eq!(before, reads(&mut c));
    assert_eq!(before[1].len(), 3);
    // Written through the server (pwritev), seen through the mapping.
    assert_eq!(statuses(&one(&mut m, request(header(Opcode::Write, 4096, 1024, 0, 1024), &[0x5a; 1024]))), [Status::Ok]);
    let r = responses(&one(&mut m, request(header(Opcode::Read, 4096, 1024, 0, 1024), &[])));
    assert_eq!(r[0].1, [0x5a; 1024]);
    assert!(mapped.stop_mappings());
    assert!(mapped.exports[0].mapping().is_none() && !mapped.stop_mappings());
    assert_eq!(responses(&one(&mut m, request(header(Opcode::Read, 4096, 1024, 0, 1024), &[])))[0].1, [0x5a; 1024]);
    drop(files);
}

#[test]
fn read_is_declustered_into_the_requested_unit() {
    let (mut s, _f) = server(1 << 16, false);
    let r = responses(&one(&mut s, request(header(Opcode::Read, 4096, 2560, 0, 1024), &[])));
    assert_eq!(r.len(), 3);
    let expect: Vec<u8> = (4096..4096 + 2560).map(pattern).collect();
    let mut got = vec![0u8; 2560];
    for (h, p) in &r {
        assert_eq!((h.tag, h.seq, h.session, h.status), (7, 3, 0x5e55, Status::Ok));
        got[h.frag_offset as usize..][..p.len()].copy_from_slice(p);
    }
    assert_eq!(got, expect);
    assert_eq!(r[2].0.frag_len, 512);
}

#[test]
fn write_lands_at_its_fragment_and_is_acknowledged() {
    let (mut s, f) = server(1 << 16, false);
    let r = responses(&one(&mut s, request(header(Opcode::Write, 8192, 2048, 1024, 1024), &[0xab; 1024])));
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].0.status, r[0].0.frag_offset, r[0].0.frag_len, r[0].1.len()), (Status::Ok, 1024, 1024, 0));
    let data = std::fs::read(f.path()).unwrap();
    assert!(data[9216..10240].iter().all(|&b| b == 0xab));
    assert_eq!(data[9215], pattern(9215));
}

#[test]
fn consecutive_write_fragments_are_acknowledged_together() {
    let (mut s, f) = server(1 << 16, false);
    let w = |frag: u32, fill: u8| request(header(Opcode::Write, 4096, 4096, frag * 1024, 1024), &[fill; 1024]);
    // Fragments 0, 1 and 3 of one write, then 2 alone: a run of two, then
    // two single acknowledgements.
    let sent = run(&mut s, &[w(0, 1), w(1, 2), w(3, 4), w(2, 3)]);
    let acks: Vec<(u32, u32, Status)> = responses(&sent)
        .iter()
        .map(|(h, p)| {
            assert!(p.is_empty());
            (h.frag_offset, h.frag_len, h.status)
        })
        .collect();
    assert_eq!(acks, [(0, 2048, Status::Ok), (3072, 1024, Status::Ok), (2048, 1024, Status::Ok)]);
    assert_eq!((s.counters.requests, s.counters.responses), (4, 3));
    let data = std::fs::read(f.path()).unwrap();
    for (k, fill) in [1u8, 2, 3, 4].into_iter().enumerate() {
        assert!(data[4096 + k * 1024..][..1024].iter().all(|&b| b == fill), "fragment {k}");
    }
    // Another request's fragment never joins the run.
    let other = request(Header { tag: 8, ..header(Opcode::Write, 4096, 4096, 1024, 1024) }, &[9; 1024]);
    assert_eq!(run(&mut s, &[w(0, 1), other]).len(), 2);
}

#[test]
fn bad_requests_get_error_responses() {
    let (mut s, _f) = server(8192, true);
    let sent = run(
        &mut s,
        &[
            request(header(Opcode::Write, 0, 512, 0, 512), &[1; 512]),
            request(header(Opcode::Read, 8192, 512, 0, 512), &[]),
            request(Header { export: 9, ..header(Opcode::Read, 0, 512, 0, 512) }, &[]),
            request(header(Opcode::Read, 0, 4096, 0, 600), &[]),
            request(header(Opcode::Discard, 0, 512, 0, 0), &[]),
        ],
    );
    assert_eq!(
        statuses(&sent),
        [Status::ReadOnly, Status::OutOfRange, Status::NoSuchExport, Status::Invalid, Status::ReadOnly]
    );
    assert_eq!(s.counters.errors, 5);
}

#[test]
fn responses_never_exceed_what_the_server_can_frame() {
    let (service, _files, _) = service(&[(1 << 16, false)], &[]);
    // A link with a 64 KiB MTU: the server still answers in frames it could
    // receive itself, and refuses larger units.
    let mut s = Server::new(service, SERVER, 65535).unwrap();
    let r = responses(&one(&mut s, request(header(Opcode::Read, 0, 32768, 0, 16384), &[])));
    assert_eq!((r.len(), r[0].0.status), (1, Status::Invalid));
    let unit = payload_per_frame((MAX_FRAME - ETH_HLEN) as u32).unwrap();
    let sent = one(&mut s, request(header(Opcode::Read, 0, 2 * unit, 0, unit), &[]));
    assert!(sent.iter().all(|f| f.len() <= MAX_FRAME));
    assert_eq!(responses(&sent).len(), 2);
}

#[test]
fn a_write_running_past_the_end_is_refused_whole() {
    let (mut s, f) = server(8192, false);
    // A 4 KiB write at 6 KiB on an 8 KiB export: its first fragment lies
    // inside the export, its third does not. Neither may be written.
    let sent = run(
        &mut s,
        &[
            request(header(Opcode::Write, 6144, 4096, 0, 1024), &[0xee; 1024]),
            request(header(Opcode::Write, 6144, 4096, 2048, 1024), &[0xee; 1024]),
        ],
    );
    assert_eq!(statuses(&sent), [Status::OutOfRange, Status::OutOfRange]);
    let data = std::fs::read(f.path()).unwrap();
    assert_eq!(data.len(), 8192);
    assert!(data[6144..].iter().enumerate().all(|(i, &b)| b == pattern(6144 + i)));
}

#[test]
fn malformed_frames_are_counted_and_ignored() {
    let (mut s, _f) = server(8192, false);
    let mut bad = request(header(Opcode::Read, 0, 512, 0, 512), &[]);
    bad[ETH_HLEN] = 9; // version
    let short = bad[..20].to_vec();
    let sent = run(&mut s, &[bad, short, vec![0u8; 4]]);
    assert!(sent.is_empty());
    assert_eq!(s.counters.malformed, 3);
}

#[test]
fn info_reports_geometry() {
    let (mut s, _f) = server(1 << 20, true);
    let r = responses(&one(&mut s, request(header(Opcode::Info, 0, 0, 0, 0), &[])));
    let info = ExportInfo::parse(&r[0].1).unwrap();
    assert_eq!(info.size, 1 << 20);
    assert_ne!(info.flags & EXPORT_READ_ONLY, 0);
}

/// The scenario version 2 exists for: a write is retransmitted, its first
/// copy is delayed, the client finishes the write and overwrites the range;
/// the delayed copy must not land on top.
#[test]
fn a_late_duplicate_of_a_finished_write_is_never_executed() {
    let (service, files, _) = service(&[(1 << 16, false)], &[]);
    let mut a = Server::new(service.clone(), SERVER, 1500).unwrap();
    // Another serving thread: sessions are shared.
    let mut b = Server::new(service, SERVER, 1500).unwrap();
    let first = request(in_seq(header(Opcode::Write, 0, 1024, 0, 1024), 3, 3), &[0xaa; 1024]);
    assert_eq!(statuses(&one(&mut a, first.clone())), [Status::Ok]);
    // Request 4 knows request 3 finished.
    let second = request(in_seq(header(Opcode::Write, 0, 1024, 0, 1024), 4, 4), &[0xbb; 1024]);
    assert_eq!(statuses(&one(&mut a, second)), [Status::Ok]);
    // The late copy of request 3, on either thread: not executed, not
    // answered, counted.
    assert!(one(&mut b, first.clone()).is_empty());
    assert!(one(&mut a, first).is_empty());
    assert_eq!((a.counters.stale, b.counters.stale), (1, 1));
    let data = std::fs::read(files[0].path()).unwrap();
    assert!(data[..1024].iter().all(|&x| x == 0xbb), "the stale write landed");
    // Late reads, discards and write-zeroes of finished requests are
    // dropped too; Info is outside the sequence and always answered.
    let finished = |op, len, frag| request(in_seq(header(op, 0, len, 0, frag), 2, 3), &[]);
    let sent = run(
        &mut b,
        &[
            finished(Opcode::Read, 512, 512),
            finished(Opcode::Discard, 512, 0),
            finished(Opcode::WriteZeroes, 512, 0),
            finished(Opcode::Flush, 0, 0),
            finished(Opcode::Info, 0, 0),
        ],
    );
    assert_eq!(responses(&sent).iter().map(|(h, _)| h.opcode).collect::<Vec<_>>(), [Opcode::Info]);
    assert_eq!(b.counters.stale, 5);
    assert!(std::fs::read(files[0].path()).unwrap()[..1024].iter().all(|&x| x == 0xbb));
}

/// Knowledge is merged before execution, even within one batch: a frame
/// that says request 3 finished, followed by a late fragment of request 3.
#[test]
fn what_a_frame_says_is_learnt_before_the_frames_after_it_run() {
    let (mut s, f) = server(1 << 16, false);
    // The session exists already, knowing nothing finished.
    assert_eq!(one(&mut s, request(in_seq(header(Opcode::Read, 0, 512, 0, 512), 3, 3), &[])).len(), 1);
    let sent = run(
        &mut s,
        &[
            request(in_seq(header(Opcode::Write, 0, 1024, 0, 1024), 4, 4), &[0xbb; 1024]),
            request(in_seq(header(Opcode::Write, 0, 1024, 0, 1024), 3, 3), &[0xaa; 1024]),
        ],
    );
    assert_eq!(responses(&sent).iter().map(|(h, _)| h.seq).collect::<Vec<_>>(), [4]);
    assert_eq!(s.counters.stale, 1);
    assert!(std::fs::read(f.path()).unwrap()[..1024].iter().all(|&x| x == 0xbb));
}

#[test]
fn sessions_are_kept_apart() {
    let (mut s, f) = server(1 << 16, false);
    let done = request(in_seq(header(Opcode::Read, 0, 512, 0, 512), 9, 9), &[]);
    assert_eq!(one(&mut s, done).len(), 1);
    // Request 3 is finished in session 0x5e55, not in another session, nor
    // for another client.
    let w = |h: Header| Header { seq: 3, finished: Finished::starting_at(3), ..h };
    let other_session = request(w(Header { session: 77, ..header(Opcode::Write, 0, 512, 0, 512) }), &[1; 512]);
    let other_client = frame(SERVER, OTHER, &encoded(w(header(Opcode::Write, 512, 512, 0, 512)), &[2; 512]));
    let sent = run(&mut s, &[other_session, other_client]);
    assert_eq!(sent.len(), 2);
    assert_eq!(s.counters.stale, 0);
    let data = std::fs::read(f.path()).unwrap();
    assert!(data[..512].iter().all(|&x| x == 1) && data[512..1024].iter().all(|&x| x == 2));
}

#[test]
fn a_frame_outside_its_own_window_is_refused() {
    let (mut s, f) = server(1 << 16, false);
    let beyond = request(in_seq(header(Opcode::Write, 0, 512, 0, 512), 3 + 200, 3), &[1; 512]);
    let own_finished = request(in_seq(header(Opcode::Write, 0, 512, 0, 512), 3, 4), &[1; 512]);
    assert!(run(&mut s, &[beyond, own_finished]).is_empty());
    assert_eq!((s.counters.malformed, s.counters.stale), (1, 1));
    assert_eq!(std::fs::read(f.path()).unwrap()[0], pattern(0));
}

/// A version 1 header: version, opcode, then zeroes (36 bytes).
fn v1(opcode: u8) -> Vec<u8> {
    let mut h = vec![0u8; V1_HEADER_LEN];
    h[0] = 1;
    h[1] = opcode;
    h[4..8].copy_from_slice(&5u32.to_be_bytes());
    h
}

#[test]
fn version_1_clients_are_refused_clearly_and_logged_once() {
    let (service, _files, log) = service(&[(8192, false)], &[]);
    let mut s = Server::new(service, SERVER, 1500).unwrap();
    let info = frame(SERVER, CLIENT, &v1(1));
    let sent = run(&mut s, &[info.clone(), frame([0xff; 6], CLIENT, &v1(1)), frame(SERVER, CLIENT, &v1(2))]);
    // Both Info requests (unicast and broadcast) refused in version 1; the
    // read is not answered.
    assert_eq!(sent.len(), 2);
    for f in &sent {
        assert_eq!((&f[0..6], &f[6..12]), (&CLIENT[..], &SERVER[..]));
        assert_eq!(&f[12..14], &ETH_P_EBD_RESPONSE.to_be_bytes());
        assert_eq!(f.len(), ETH_HLEN + V1_HEADER_LEN);
        assert_eq!((f[ETH_HLEN], f[ETH_HLEN + 1]), (1, 1));
        assert_eq!(&f[ETH_HLEN + 4..ETH_HLEN + 8], &5u32.to_be_bytes(), "tag echoed");
        assert_eq!(&f[ETH_HLEN + 14..ETH_HLEN + 16], &(Status::Unsupported as u16).to_be_bytes());
    }
    assert_eq!(s.counters.v1, 3);
    // Logged once per client, however many frames.
    run(&mut s, &[frame(SERVER, OTHER, &v1(1)), info]);
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(log[0].contains("02:00:00:00:00:01 speaks EBD protocol v1; this server speaks v2"), "{}", log[0]);
    assert!(log[1].contains("02:00:00:00:00:03"));
    // Other versions are malformed.
    let mut v3 = v1(1);
    v3[0] = 3;
    run(&mut s, &[frame(SERVER, CLIENT, &v3)]);
    assert_eq!(s.counters.malformed, 1);
}

#[test]
fn group_zero_and_own_source_addresses_are_refused() {
    let (mut s, f) = server(8192, false);
    let write = encoded(header(Opcode::Write, 0, 512, 0, 512), &[7; 512]);
    let info = encoded(header(Opcode::Info, 0, 0, 0, 0), &[]);
    let sent = run(
        &mut s,
        &[
            frame(SERVER, [0xff; 6], &write),
            frame(SERVER, [0x01, 0, 0x5e, 0, 0, 1], &info),
            frame(SERVER, [0x33, 0x33, 0, 0, 0, 1], &write),
            frame(SERVER, [0; 6], &info),
            frame(SERVER, SERVER, &write),
        ],
    );
    assert!(sent.is_empty());
    assert_eq!((s.counters.bad_source, s.counters.requests), (5, 0));
    assert_eq!(std::fs::read(f.path()).unwrap()[0], pattern(0));
}

#[test]
fn only_frames_addressed_to_the_server_are_served() {
    let (mut s, f) = server(8192, false);
    let write = encoded(header(Opcode::Write, 0, 512, 0, 512), &[7; 512]);
    let read = encoded(header(Opcode::Read, 0, 512, 0, 512), &[]);
    let info = encoded(header(Opcode::Info, 0, 0, 0, 0), &[]);
    let sent = run(
        &mut s,
        &[
            // Another host's unicast (seen in promiscuous mode).
            frame([2, 0, 0, 0, 0, 0x99], CLIENT, &write),
            frame([2, 0, 0, 0, 0, 0x99], CLIENT, &info),
            // Multicast, and broadcast of anything but Info.
            frame([0x01, 0, 0x5e, 0, 0, 1], CLIENT, &info),
            frame([0xff; 6], CLIENT, &write),
            frame([0xff; 6], CLIENT, &read),
        ],
    );
    assert!(sent.is_empty());
    assert_eq!(s.counters.misaddressed, 5);
    assert_eq!(std::fs::read(f.path()).unwrap()[0], pattern(0), "another host's write landed");
    // Discovery: a broadcast Info is answered, from the server's address.
    let r = responses(&one(&mut s, frame([0xff; 6], CLIENT, &info)));
    assert_eq!((r.len(), r[0].0.opcode, r[0].0.status), (1, Opcode::Info, Status::Ok));
}

#[test]
fn export_rules_deny_and_restrict_clients() {
    let rules = [
        AllowRule { export: 0, client: CLIENT, read_only: false },
        AllowRule { export: 1, client: CLIENT, read_only: true },
    ];
    let (service, files, _) = service(&[(8192, false), (8192, false), (8192, false)], &rules);
    let mut s = Server::new(service, SERVER, 1500).unwrap();
    let on = |export: u16, h: Header| Header { export, ..h };
    let from = |src, h: Header, payload: &[u8]| frame(SERVER, src, &encoded(h, payload));
    // A client no rule lists: Denied to everything on exports 0 and 1,
    // Info included, and nothing executed; export 2 has no rules.
    let mut hostile = Vec::new();
    for export in [0, 1] {
        hostile.push(from(OTHER, on(export, header(Opcode::Info, 0, 0, 0, 0)), &[]));
        hostile.push(from(OTHER, on(export, header(Opcode::Read, 0, 512, 0, 512)), &[]));
        hostile.push(from(OTHER, on(export, header(Opcode::Write, 0, 512, 0, 512)), &[9; 512]));
        hostile.push(from(OTHER, on(export, header(Opcode::WriteZeroes, 0, 512, 0, 0)), &[]));
    }
    hostile.push(from(OTHER, on(2, header(Opcode::Write, 0, 512, 0, 512)), &[9; 512]));
    let sent = responses_to(OTHER, &run(&mut s, &hostile));
    assert_eq!(sent.iter().map(|(h, _)| h.status).filter(|&st| st == Status::Denied).count(), 8);
    assert_eq!(sent.last().map(|(h, _)| h.status), Some(Status::Ok), "export 2 serves everyone");
    assert_eq!(s.counters.denied, 8);
    for f in &files[..2] {
        assert_eq!(std::fs::read(f.path()).unwrap()[..512], (0..512).map(pattern).collect::<Vec<_>>()[..]);
    }
    // The read-only client: told so in Info, refused writes, allowed reads.
    let sent = run(
        &mut s,
        &[
            request(on(1, header(Opcode::Info, 0, 0, 0, 0)), &[]),
            request(on(1, header(Opcode::Write, 0, 512, 0, 512)), &[9; 512]),
            request(on(1, header(Opcode::Discard, 0, 512, 0, 0)), &[]),
            request(on(1, header(Opcode::WriteZeroes, 0, 512, 0, 0)), &[]),
            request(on(1, header(Opcode::Read, 0, 512, 0, 512)), &[]),
        ],
    );
    let r = responses(&sent);
    let info = ExportInfo::parse(&r[0].1).unwrap();
    assert_eq!(info.flags & (EXPORT_READ_ONLY | EXPORT_DISCARD | EXPORT_WRITE_ZEROES), EXPORT_READ_ONLY);
    assert_eq!(
        r[1..].iter().map(|(h, _)| h.status).collect::<Vec<_>>(),
        [Status::ReadOnly, Status::ReadOnly, Status::ReadOnly, Status::Ok]
    );
    assert_eq!(std::fs::read(files[1].path()).unwrap()[0], pattern(0));
    // The read-write client writes export 0.
    assert_eq!(statuses(&one(&mut s, request(header(Opcode::Write, 0, 512, 0, 512), &[9; 512]))), [Status::Ok]);
    let info = ExportInfo::parse(&responses(&one(&mut s, request(header(Opcode::Info, 0, 0, 0, 0), &[])))[0].1).unwrap();
    assert_eq!(info.flags & EXPORT_READ_ONLY, 0);
}

#[test]
fn a_read_asking_for_more_than_max_fragments_frames_is_malformed() {
    let (mut s, _f) = server(MAX_REQUEST_LEN as usize, false);
    let unit = MAX_REQUEST_LEN / (MAX_FRAGMENTS * 2);
    assert!(one(&mut s, request(header(Opcode::Read, 0, MAX_REQUEST_LEN, 0, unit), &[])).is_empty());
    assert_eq!(s.counters.malformed, 1);
    let unit = MAX_REQUEST_LEN / MAX_FRAGMENTS;
    assert_eq!(one(&mut s, request(header(Opcode::Read, 0, MAX_REQUEST_LEN, 0, unit), &[])).len(), 1024);
}

/// The attack that once took the server from 3.7 MB to 1.06 GB resident:
/// a batch of maximal reads. Responses are sent as the outbox fills, which
/// never passes its bound, and the memory is given back afterwards.
#[test]
fn a_batch_of_maximal_reads_stays_within_the_memory_bound() {
    for (mtu, unit, map) in
        [(1500, MAX_REQUEST_LEN / MAX_FRAGMENTS, false), (9000, 8704, false), (1500, 1024, true), (9000, 8704, true)]
    {
        let (service, _files, _) = service_with(&[(MAX_REQUEST_LEN as usize, false)], &[], map);
        let mut s = Server::new(service, SERVER, mtu).unwrap();
        let read = request(header(Opcode::Read, 0, MAX_REQUEST_LEN, 0, unit), &[]);
        let batch = vec![read; 64];
        let mut out = Outbox::new();
        let (mut frames, mut bytes, mut sends) = (0usize, 0usize, 0);
        s.handle_batch(batch.iter().map(|f| &f[..]), &mut out, &mut |o: &Outbox| {
            assert!(o.count() <= OUTBOX_FRAMES, "{} frames held", o.count());
            assert!(o.allocated() <= OUTBOX_BYTES, "{} bytes held", o.allocated());
            sends += 1;
            frames += o.count();
            bytes += o.frames().map(|f| f.len()).sum::<usize>();
        });
        let per_read = MAX_REQUEST_LEN.div_ceil(unit) as usize;
        assert_eq!(frames, 64 * per_read);
        assert_eq!(bytes, 64 * (per_read * RESPONSE_PREFIX + MAX_REQUEST_LEN as usize));
        assert!(sends > 1, "sent once at the end");
        assert!(out.footprint() <= OUTBOX_BYTES + OUTBOX_FRAMES * 64, "{} retained", out.footprint());
        // Once the burst is over, what stays is the retained size.
        s.handle_batch([], &mut out, &mut |_: &Outbox| {});
        assert!(out.allocated() <= RETAINED_BYTES, "{} retained after the burst", out.allocated());
    }
}

/// After the link's MTU drops under a client's frame size, its reads are
/// left unanswered (it retransmits) rather than refused, and answered again
/// once the MTU is back.
#[test]
fn reads_follow_the_links_mtu() {
    let (service, _files, log) = service(&[(1 << 16, false)], &[]);
    let mut s = Server::new(service, SERVER, 9000).unwrap();
    let big = request(header(Opcode::Read, 0, 8704 * 2, 0, 8704), &[]);
    let small = request(header(Opcode::Read, 0, 4096, 0, 1024), &[]);
    assert_eq!(one(&mut s, big.clone()).len(), 2);
    assert!(s.set_link(SERVER, 1500));
    assert_eq!(s.max_payload(), 1024);
    assert!(one(&mut s, big.clone()).is_empty());
    assert_eq!(s.counters.unframeable, 1);
    assert!(log.lock().unwrap()[0].contains("8704-byte frames"));
    assert_eq!(one(&mut s, small).len(), 4);
    assert!(s.set_link(SERVER, 9000));
    assert!(!s.set_link(SERVER, 9000));
    assert_eq!(one(&mut s, big.clone()).len(), 2);
    // A changed address is followed too.
    s.set_link(OTHER, 9000);
    assert!(one(&mut s, big).is_empty());
    assert_eq!(s.counters.misaddressed, 1);
}
