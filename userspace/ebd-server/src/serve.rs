//! Turning request frames into response frames. No I/O on the network
//! here, so the protocol handling is testable on its own.

use crate::{export::Export, socket::MAX_FRAME};
use std::{
    io::{IoSlice, IoSliceMut},
    sync::Arc,
};
use polynic_abi::ebd::{
    payload_per_frame, Direction, ExportInfo, Finished, Header, Opcode, Status, WireError, ETH_P_EBD_RESPONSE, FLAG_FUA,
    HEADER_LEN,
};

/// Ethernet header length.
pub const ETH_HLEN: usize = 14;

/// Most fragments written by one vectored write (Linux's `UIO_MAXIOV`).
const MAX_RUN: usize = 1024;

/// What precedes a response's payload: the Ethernet and EBD headers.
const RESPONSE_PREFIX: usize = ETH_HLEN + HEADER_LEN;

/// Counters the server prints when it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Request frames handled.
    pub requests: u64,
    /// Frames dropped as malformed.
    pub malformed: u64,
    /// Responses carrying an error status.
    pub errors: u64,
    /// Response frames produced.
    pub responses: u64,
}

impl std::ops::AddAssign for Counters {
    fn add_assign(&mut self, o: Counters) {
        self.requests += o.requests;
        self.malformed += o.malformed;
        self.errors += o.errors;
        self.responses += o.responses;
    }
}

/// Reusable response frame buffers, made by [`Server::outbox`]. Each keeps
/// the size of the server's largest response once allocated, so building a
/// frame never clears or zero-fills the payload that a read is about to
/// overwrite anyway.
pub struct Outbox {
    /// Frame buffers with the length of the frame each holds now.
    frames: Vec<(Vec<u8>, usize)>,
    len: usize,
    frame_size: usize,
}

impl Outbox {
    /// A frame of `size` bytes, contents unspecified.
    fn next(&mut self, size: usize) -> &mut [u8] {
        if self.len == self.frames.len() {
            self.frames.push((vec![0; self.frame_size], 0));
        }
        let (f, n) = &mut self.frames[self.len];
        if f.len() < size {
            f.resize(size, 0);
        }
        *n = size;
        self.len += 1;
        &mut f[..size]
    }

    /// The frames produced since the last [`Outbox::clear`].
    pub fn frames(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        self.frames[..self.len].iter().map(|(f, n)| &f[..*n])
    }

    /// How many frames were produced since the last [`Outbox::clear`].
    fn count(&self) -> usize {
        self.len
    }

    /// The bytes from `at` on of every frame from `first` on: the payloads
    /// of a run of frames, to be filled by one vectored read.
    fn tails_from(&mut self, first: usize, at: usize) -> Vec<IoSliceMut<'_>> {
        self.frames[first..self.len].iter_mut().map(|(f, n)| IoSliceMut::new(&mut f[at..*n])).collect()
    }

    /// Forgets the frames, keeping their memory.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

/// Serves every export to every client on one interface.
pub struct Server {
    exports: Arc<[Export]>,
    local: [u8; 6],
    max_payload: u32,
    /// What it has done so far.
    pub counters: Counters,
}

impl Server {
    /// A server answering from `local` on a link of `mtu`. Its frames are
    /// at most [`MAX_FRAME`] bytes, what it can receive, whatever the MTU.
    pub fn new(exports: Arc<[Export]>, local: [u8; 6], mtu: u32) -> Option<Self> {
        let mtu = mtu.min((MAX_FRAME - ETH_HLEN) as u32);
        Some(Server { exports, local, max_payload: payload_per_frame(mtu)?, counters: Counters::default() })
    }

    /// Response buffers for this server: each holds its largest response.
    pub fn outbox(&self) -> Outbox {
        Outbox { frames: Vec::new(), len: 0, frame_size: RESPONSE_PREFIX + self.max_payload as usize }
    }

    /// Handles one received Ethernet frame, appending its responses to `out`.
    #[cfg(test)]
    fn handle(&mut self, frame: &[u8], out: &mut Outbox) {
        self.handle_batch([frame], out);
    }

    /// Handles received Ethernet frames in order, appending their responses
    /// to `out`. Consecutive fragments of one write that arrive together
    /// are written with one vectored write and acknowledged with one
    /// response covering them all. Malformed frames are counted and
    /// produce nothing.
    pub fn handle_batch<'f>(&mut self, frames: impl IntoIterator<Item = &'f [u8]>, out: &mut Outbox) {
        let mut run: Option<WriteRun<'f>> = None;
        for frame in frames {
            let Some(request) = self.parse(frame) else {
                continue;
            };
            if let Some(r) = run.as_mut() {
                if r.extend(&request) {
                    continue;
                }
            }
            if let Some(r) = run.take() {
                self.write(r, out);
            }
            if request.header.opcode == Opcode::Write {
                run = Some(WriteRun::new(request));
            } else {
                self.respond(&request, out);
            }
        }
        if let Some(r) = run {
            self.write(r, out);
        }
    }

    /// Parses a request frame; counts it as a request or as malformed.
    fn parse<'f>(&mut self, frame: &'f [u8]) -> Option<Request<'f>> {
        let parsed = frame
            .get(ETH_HLEN..)
            .ok_or(WireError::Short)
            .and_then(|rest| Header::parse(rest, Direction::Request));
        let Ok((header, payload)) = parsed else {
            self.counters.malformed += 1;
            return None;
        };
        self.counters.requests += 1;
        let mut client = [0u8; 6];
        client.copy_from_slice(&frame[6..12]);
        Some(Request { client, header, payload })
    }

    /// Answers every request but a write.
    fn respond(&mut self, request: &Request<'_>, out: &mut Outbox) {
        let Server { exports, local, max_payload, counters } = self;
        let h = &request.header;
        let mut to = Replies { out, counters, dst: request.client, src: *local };
        let Some(export) = exports.get(usize::from(h.export)) else {
            return to.status(h, Status::NoSuchExport);
        };
        let done = match h.opcode {
            Opcode::Info => {
                let reply = Header { length: ExportInfo::LEN as u32, frag_offset: 0, frag_len: ExportInfo::LEN as u32, ..*h };
                // Cannot fail: the payload area is exactly the encoded size.
                let _ = export.info().encode(to.frame(&reply, Status::Ok, ExportInfo::LEN));
                return;
            }
            Opcode::Read => return read(export, *max_payload, h, &mut to),
            Opcode::Write => Err(Status::Invalid),
            Opcode::Flush => export.flush(),
            Opcode::Discard => export.discard(h.offset, u64::from(h.length)),
            Opcode::WriteZeroes => export.write_zeroes(h.offset, u64::from(h.length)),
        };
        to.status(h, done.err().unwrap_or(Status::Ok));
    }

    /// Writes a run of fragments and acknowledges them with one response.
    fn write(&mut self, mut run: WriteRun<'_>, out: &mut Outbox) {
        let Server { exports, local, counters, .. } = self;
        let mut to = Replies { out, counters, dst: run.client, src: *local };
        let h = Header { frag_len: run.end - run.first.frag_offset, ..run.first };
        let Some(export) = exports.get(usize::from(h.export)) else {
            return to.status(&h, Status::NoSuchExport);
        };
        // The whole request must lie on the export, as for reads: a write
        // that runs past the end is refused in every fragment, not written
        // in the fragments that happen to fit.
        let done = export
            .check_range(h.offset, u64::from(h.length))
            .and_then(|()| export.write_vectored(h.offset + u64::from(h.frag_offset), &mut run.parts, h.flags & FLAG_FUA != 0));
        to.status(&h, done.err().unwrap_or(Status::Ok));
    }
}

/// A parsed request frame.
struct Request<'f> {
    client: [u8; 6],
    header: Header,
    payload: &'f [u8],
}

/// Consecutive fragments of one write, received together.
struct WriteRun<'f> {
    client: [u8; 6],
    /// The first fragment's header.
    first: Header,
    /// Where in the request the run ends.
    end: u32,
    parts: Vec<IoSlice<'f>>,
}

impl<'f> WriteRun<'f> {
    fn new(r: Request<'f>) -> Self {
        WriteRun { client: r.client, first: r.header, end: r.header.frag_offset + r.header.frag_len, parts: vec![IoSlice::new(r.payload)] }
    }

    /// Appends `r` if it is the next fragment of the same write.
    fn extend(&mut self, r: &Request<'f>) -> bool {
        let (a, b) = (&self.first, &r.header);
        let same = r.client == self.client
            && b.opcode == Opcode::Write
            && (b.tag, b.seq, b.session, b.export, b.offset, b.length, b.flags) == (a.tag, a.seq, a.session, a.export, a.offset, a.length, a.flags)
            && b.frag_offset == self.end
            && self.parts.len() < MAX_RUN;
        if same {
            self.end += b.frag_len;
            self.parts.push(IoSlice::new(r.payload));
        }
        same
    }
}

/// A read answers in frames of the size the request's `frag_len` asks for
/// (the client's declustering unit). Their headers are written first; then
/// one vectored read fills every payload straight from the export.
fn read(export: &Export, max_payload: u32, h: &Header, to: &mut Replies<'_>) {
    let unit = h.frag_len;
    if unit == 0 || unit > max_payload || (unit % 512 != 0 && unit != h.length) {
        return to.status(h, Status::Invalid);
    }
    if let Err(s) = export.check_range(h.offset, u64::from(h.length)) {
        return to.status(h, s);
    }
    let first = to.out.count();
    let mut frag_offset = 0;
    while frag_offset < h.length {
        let frag_len = unit.min(h.length - frag_offset);
        to.frame(&Header { frag_offset, frag_len, ..*h }, Status::Ok, frag_len as usize);
        frag_offset += frag_len;
    }
    let mut payloads = to.out.tails_from(first, RESPONSE_PREFIX);
    if let Err(status) = export.read_vectored(h.offset, &mut payloads) {
        drop(payloads);
        // One error response replaces the data frames.
        to.retract_to(first);
        to.status(h, status);
    }
}

/// Where the responses to one request go, and what they are counted as.
struct Replies<'a> {
    out: &'a mut Outbox,
    counters: &'a mut Counters,
    dst: [u8; 6],
    src: [u8; 6],
}

impl Replies<'_> {
    /// Appends a response frame with header `h` (status `status`) and room
    /// for `payload_len` payload bytes (at most a jumbo frame's), which the
    /// caller fills; returns that payload.
    fn frame(&mut self, h: &Header, status: Status, payload_len: usize) -> &mut [u8] {
        self.counters.responses += 1;
        if status != Status::Ok {
            self.counters.errors += 1;
        }
        let buf = self.out.next(RESPONSE_PREFIX + payload_len);
        buf[0..6].copy_from_slice(&self.dst);
        buf[6..12].copy_from_slice(&self.src);
        buf[12..ETH_HLEN].copy_from_slice(&ETH_P_EBD_RESPONSE.to_be_bytes());
        // Cannot fail: the buffer holds the header.
        let _ = Header { status, finished: Finished::default(), ..*h }.encode(&mut buf[ETH_HLEN..]);
        &mut buf[RESPONSE_PREFIX..]
    }

    /// Appends a response without payload.
    fn status(&mut self, h: &Header, status: Status) {
        self.frame(h, status, 0);
    }

    /// Takes back every frame appended from the `first` on.
    fn retract_to(&mut self, first: usize) {
        let n = self.out.len.saturating_sub(first);
        self.out.len -= n;
        self.counters.responses = self.counters.responses.saturating_sub(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::ExportSpec;
    use polynic_abi::ebd::{EXPORT_READ_ONLY, ETH_P_EBD_REQUEST};
    use std::io::Write;

    const CLIENT: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const SERVER: [u8; 6] = [2, 0, 0, 0, 0, 2];

    fn server(size: usize, read_only: bool) -> (Server, tempfile::NamedTempFile) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        f.write_all(&data).unwrap();
        let export = Export::open(&ExportSpec { path: f.path().into(), read_only }).unwrap();
        (Server::new(vec![export].into(), SERVER, 1500).unwrap(), f)
    }

    fn request(h: Header, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&SERVER);
        f.extend_from_slice(&CLIENT);
        f.extend_from_slice(&ETH_P_EBD_REQUEST.to_be_bytes());
        let at = f.len();
        f.resize(at + HEADER_LEN, 0);
        h.encode(&mut f[at..]).unwrap();
        f.extend_from_slice(payload);
        f
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

    fn responses(out: &Outbox) -> Vec<(Header, Vec<u8>)> {
        out.frames()
            .map(|f| {
                assert_eq!(&f[0..6], &CLIENT);
                assert_eq!(&f[12..14], &ETH_P_EBD_RESPONSE.to_be_bytes());
                let (h, p) = Header::parse(&f[ETH_HLEN..], Direction::Response).unwrap();
                (h, p.to_vec())
            })
            .collect()
    }

    #[test]
    fn read_is_declustered_into_the_requested_unit() {
        let (mut s, _f) = server(1 << 16, false);
        let mut out = s.outbox();
        s.handle(&request(header(Opcode::Read, 4096, 2560, 0, 1024), &[]), &mut out);
        let r = responses(&out);
        assert_eq!(r.len(), 3);
        let expect: Vec<u8> = (4096..4096 + 2560).map(|i| (i % 251) as u8).collect();
        let mut got = vec![0u8; 2560];
        for (h, p) in &r {
            assert_eq!((h.tag, h.seq, h.status), (7, 3, Status::Ok));
            got[h.frag_offset as usize..][..p.len()].copy_from_slice(p);
        }
        assert_eq!(got, expect);
        assert_eq!(r[2].0.frag_len, 512);
    }

    #[test]
    fn write_lands_at_its_fragment_and_is_acknowledged() {
        let (mut s, f) = server(1 << 16, false);
        let mut out = s.outbox();
        s.handle(&request(header(Opcode::Write, 8192, 2048, 1024, 1024), &[0xab; 1024]), &mut out);
        let r = responses(&out);
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].0.status, r[0].0.frag_offset, r[0].0.frag_len, r[0].1.len()), (Status::Ok, 1024, 1024, 0));
        let data = std::fs::read(f.path()).unwrap();
        assert!(data[9216..10240].iter().all(|&b| b == 0xab));
        assert_eq!(data[9215], (9215 % 251) as u8);
    }

    #[test]
    fn consecutive_write_fragments_are_acknowledged_together() {
        let (mut s, f) = server(1 << 16, false);
        let mut out = s.outbox();
        let w = |frag: u32, fill: u8| request(header(Opcode::Write, 4096, 4096, frag * 1024, 1024), &[fill; 1024]);
        // Fragments 0, 1 and 3 of one write, then 2 alone: a run of two,
        // then two single acknowledgements.
        let batch = [w(0, 1), w(1, 2), w(3, 4), w(2, 3)];
        s.handle_batch(batch.iter().map(|f| &f[..]), &mut out);
        let acks: Vec<(u32, u32, Status)> =
            responses(&out).iter().map(|(h, p)| { assert!(p.is_empty()); (h.frag_offset, h.frag_len, h.status) }).collect();
        assert_eq!(acks, [(0, 2048, Status::Ok), (3072, 1024, Status::Ok), (2048, 1024, Status::Ok)]);
        assert_eq!((s.counters.requests, s.counters.responses), (4, 3));
        let data = std::fs::read(f.path()).unwrap();
        for (k, fill) in [1u8, 2, 3, 4].into_iter().enumerate() {
            assert!(data[4096 + k * 1024..][..1024].iter().all(|&b| b == fill), "fragment {k}");
        }
        // Another request's fragment never joins the run.
        out.clear();
        let other = request(Header { tag: 8, ..header(Opcode::Write, 4096, 4096, 1024, 1024) }, &[9; 1024]);
        s.handle_batch([&w(0, 1)[..], &other[..]], &mut out);
        assert_eq!(out.count(), 2);
    }

    #[test]
    fn bad_requests_get_error_responses() {
        let (mut s, _f) = server(8192, true);
        let mut out = s.outbox();
        s.handle(&request(header(Opcode::Write, 0, 512, 0, 512), &[1; 512]), &mut out);
        s.handle(&request(header(Opcode::Read, 8192, 512, 0, 512), &[]), &mut out);
        s.handle(&request(Header { export: 9, ..header(Opcode::Read, 0, 512, 0, 512) }, &[]), &mut out);
        s.handle(&request(header(Opcode::Read, 0, 4096, 0, 4096), &[]), &mut out);
        s.handle(&request(header(Opcode::Discard, 0, 512, 0, 0), &[]), &mut out);
        let statuses: Vec<Status> = responses(&out).iter().map(|(h, _)| h.status).collect();
        assert_eq!(
            statuses,
            [Status::ReadOnly, Status::OutOfRange, Status::NoSuchExport, Status::Invalid, Status::ReadOnly]
        );
        assert_eq!(s.counters.errors, 5);
    }

    #[test]
    fn responses_never_exceed_what_the_server_can_frame() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&vec![7u8; 1 << 16]).unwrap();
        let export = Export::open(&ExportSpec { path: f.path().into(), read_only: false }).unwrap();
        // A link with a 64 KiB MTU: the server still answers in frames it
        // could receive itself, and refuses larger units.
        let mut s = Server::new(vec![export].into(), SERVER, 65535).unwrap();
        let mut out = s.outbox();
        s.handle(&request(header(Opcode::Read, 0, 32768, 0, 16384), &[]), &mut out);
        let r = responses(&out);
        assert_eq!((r.len(), r[0].0.status), (1, Status::Invalid));
        out.clear();
        let unit = payload_per_frame((MAX_FRAME - ETH_HLEN) as u32).unwrap();
        s.handle(&request(header(Opcode::Read, 0, 2 * unit, 0, unit), &[]), &mut out);
        assert!(out.frames().all(|f| f.len() <= MAX_FRAME));
        assert_eq!(responses(&out).len(), 2);
    }

    #[test]
    fn a_write_running_past_the_end_is_refused_whole() {
        let (mut s, f) = server(8192, false);
        let mut out = s.outbox();
        // A 4 KiB write at 6 KiB on an 8 KiB export: its first fragment lies
        // inside the export, its second does not. Neither may be written.
        s.handle(&request(header(Opcode::Write, 6144, 4096, 0, 1024), &[0xee; 1024]), &mut out);
        s.handle(&request(header(Opcode::Write, 6144, 4096, 2048, 1024), &[0xee; 1024]), &mut out);
        let statuses: Vec<Status> = responses(&out).iter().map(|(h, _)| h.status).collect();
        assert_eq!(statuses, [Status::OutOfRange, Status::OutOfRange]);
        let data = std::fs::read(f.path()).unwrap();
        assert_eq!(data.len(), 8192);
        assert!(data[6144..].iter().enumerate().all(|(i, &b)| b == ((6144 + i) % 251) as u8));
    }

    #[test]
    fn malformed_frames_are_counted_and_ignored() {
        let (mut s, _f) = server(8192, false);
        let mut out = s.outbox();
        let mut bad = request(header(Opcode::Read, 0, 512, 0, 512), &[]);
        bad[ETH_HLEN] = 9; // version
        s.handle(&bad, &mut out);
        s.handle(&bad[..20], &mut out);
        s.handle(&[0u8; 4], &mut out);
        assert_eq!(out.count(), 0);
        assert_eq!(s.counters.malformed, 3);
    }

    #[test]
    fn info_reports_geometry() {
        let (mut s, _f) = server(1 << 20, true);
        let mut out = s.outbox();
        s.handle(&request(header(Opcode::Info, 0, 0, 0, 0), &[]), &mut out);
        let r = responses(&out);
        let info = ExportInfo::parse(&r[0].1).unwrap();
        assert_eq!(info.size, 1 << 20);
        assert_ne!(info.flags & EXPORT_READ_ONLY, 0);
    }
}
