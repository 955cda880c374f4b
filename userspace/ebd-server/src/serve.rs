//! Turning request frames into response frames. No I/O on the network
//! here, so the protocol handling is testable on its own.

use crate::export::Export;
use std::sync::Arc;
use polynic_abi::ebd::{
    payload_per_frame, Direction, ExportInfo, Header, Opcode, Status, ETH_P_EBD_RESPONSE, FLAG_FUA, HEADER_LEN,
};

/// Ethernet header length.
pub const ETH_HLEN: usize = 14;

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

/// Reusable response frame buffers.
#[derive(Default)]
pub struct Outbox {
    frames: Vec<Vec<u8>>,
    len: usize,
}

impl Outbox {
    /// A fresh, cleared frame buffer.
    fn next(&mut self) -> &mut Vec<u8> {
        if self.len == self.frames.len() {
            self.frames.push(Vec::new());
        }
        let f = &mut self.frames[self.len];
        self.len += 1;
        f.clear();
        f
    }

    /// The frames produced since the last [`Outbox::clear`].
    pub fn frames(&self) -> &[Vec<u8>] {
        &self.frames[..self.len]
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
    /// A server answering from `local` on a link of `mtu`.
    pub fn new(exports: Arc<[Export]>, local: [u8; 6], mtu: u32) -> Option<Self> {
        Some(Server { exports, local, max_payload: payload_per_frame(mtu)?, counters: Counters::default() })
    }

    /// Handles one received Ethernet frame, appending its responses to `out`.
    /// Malformed frames are counted and produce nothing.
    pub fn handle(&mut self, frame: &[u8], out: &mut Outbox) {
        if frame.len() < ETH_HLEN {
            self.counters.malformed += 1;
            return;
        }
        let mut client = [0u8; 6];
        client.copy_from_slice(&frame[6..12]);
        let (h, payload) = match Header::parse(&frame[ETH_HLEN..], Direction::Request) {
            Ok(parsed) => parsed,
            Err(_) => {
                self.counters.malformed += 1;
                return;
            }
        };
        self.counters.requests += 1;
        let Some(export) = self.exports.get(usize::from(h.export)) else {
            return self.reply(out, client, &h, Status::NoSuchExport, &[]);
        };
        match h.opcode {
            Opcode::Info => {
                let mut info = [0u8; ExportInfo::LEN];
                // Cannot fail: the buffer is exactly the encoded size.
                let _ = export.info().encode(&mut info);
                let reply = Header { length: ExportInfo::LEN as u32, frag_offset: 0, frag_len: ExportInfo::LEN as u32, ..h };
                self.reply(out, client, &reply, Status::Ok, &info);
            }
            Opcode::Read => self.read(out, client, &h),
            Opcode::Write => {
                let at = h.offset + u64::from(h.frag_offset);
                let status = status_of(export.write(at, payload, h.flags & FLAG_FUA != 0));
                self.reply(out, client, &h, status, &[]);
            }
            Opcode::Flush => {
                let status = status_of(export.flush());
                self.reply(out, client, &h, status, &[]);
            }
            Opcode::Discard => {
                let status = status_of(export.discard(h.offset, u64::from(h.length)));
                self.reply(out, client, &h, status, &[]);
            }
            Opcode::WriteZeroes => {
                let status = status_of(export.write_zeroes(h.offset, u64::from(h.length)));
                self.reply(out, client, &h, status, &[]);
            }
        }
    }

    /// A read answers in frames of the size the request's `frag_len` asks
    /// for (the client's declustering unit).
    fn read(&mut self, out: &mut Outbox, client: [u8; 6], h: &Header) {
        let export = &self.exports[usize::from(h.export)];
        let unit = h.frag_len;
        if unit == 0 || unit > self.max_payload || (unit % 512 != 0 && unit != h.length) {
            return self.reply(out, client, h, Status::Invalid, &[]);
        }
        if let Err(s) = export.check_range(h.offset, u64::from(h.length)) {
            return self.reply(out, client, h, s, &[]);
        }
        let mut frag_offset = 0;
        while frag_offset < h.length {
            let frag_len = unit.min(h.length - frag_offset);
            let buf = out.next();
            write_prefix(buf, client, self.local);
            let at = buf.len();
            buf.resize(at + HEADER_LEN + frag_len as usize, 0);
            let data = &mut buf[at + HEADER_LEN..];
            let status = status_of(export.read(h.offset + u64::from(frag_offset), data));
            if status != Status::Ok {
                // Replace the partial data frame by one error response.
                out.len -= 1;
                return self.reply(out, client, h, status, &[]);
            }
            let reply = Header { status: Status::Ok, frag_offset, frag_len, ..*h };
            // Cannot fail: the buffer holds the header.
            let _ = reply.encode(&mut buf[at..]);
            self.counters.responses += 1;
            frag_offset += frag_len;
        }
    }

    fn reply(&mut self, out: &mut Outbox, client: [u8; 6], h: &Header, status: Status, payload: &[u8]) {
        let buf = out.next();
        write_prefix(buf, client, self.local);
        let at = buf.len();
        buf.resize(at + HEADER_LEN, 0);
        let reply = Header { status, ..*h };
        // Cannot fail: the buffer holds the header.
        let _ = reply.encode(&mut buf[at..]);
        if status == Status::Ok {
            buf.extend_from_slice(payload);
        } else {
            self.counters.errors += 1;
        }
        self.counters.responses += 1;
    }
}

fn status_of(r: Result<(), Status>) -> Status {
    r.err().unwrap_or(Status::Ok)
}

fn write_prefix(buf: &mut Vec<u8>, dst: [u8; 6], src: [u8; 6]) {
    buf.extend_from_slice(&dst);
    buf.extend_from_slice(&src);
    buf.extend_from_slice(&ETH_P_EBD_RESPONSE.to_be_bytes());
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
        Header { opcode, flags: 0, tag: 7, generation: 3, export: 0, status: Status::Ok, offset, length, frag_offset, frag_len }
    }

    fn responses(out: &Outbox) -> Vec<(Header, Vec<u8>)> {
        out.frames()
            .iter()
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
        let mut out = Outbox::default();
        s.handle(&request(header(Opcode::Read, 4096, 2560, 0, 1024), &[]), &mut out);
        let r = responses(&out);
        assert_eq!(r.len(), 3);
        let expect: Vec<u8> = (4096..4096 + 2560).map(|i| (i % 251) as u8).collect();
        let mut got = vec![0u8; 2560];
        for (h, p) in &r {
            assert_eq!((h.tag, h.generation, h.status), (7, 3, Status::Ok));
            got[h.frag_offset as usize..][..p.len()].copy_from_slice(p);
        }
        assert_eq!(got, expect);
        assert_eq!(r[2].0.frag_len, 512);
    }

    #[test]
    fn write_lands_at_its_fragment_and_is_acknowledged() {
        let (mut s, f) = server(1 << 16, false);
        let mut out = Outbox::default();
        s.handle(&request(header(Opcode::Write, 8192, 2048, 1024, 1024), &[0xab; 1024]), &mut out);
        let r = responses(&out);
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].0.status, r[0].0.frag_offset, r[0].0.frag_len, r[0].1.len()), (Status::Ok, 1024, 1024, 0));
        let data = std::fs::read(f.path()).unwrap();
        assert!(data[9216..10240].iter().all(|&b| b == 0xab));
        assert_eq!(data[9215], (9215 % 251) as u8);
    }

    #[test]
    fn bad_requests_get_error_responses() {
        let (mut s, _f) = server(8192, true);
        let mut out = Outbox::default();
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
    fn malformed_frames_are_counted_and_ignored() {
        let (mut s, _f) = server(8192, false);
        let mut out = Outbox::default();
        let mut bad = request(header(Opcode::Read, 0, 512, 0, 512), &[]);
        bad[ETH_HLEN] = 9; // version
        s.handle(&bad, &mut out);
        s.handle(&bad[..20], &mut out);
        s.handle(&[0u8; 4], &mut out);
        assert!(out.frames().is_empty());
        assert_eq!(s.counters.malformed, 3);
    }

    #[test]
    fn info_reports_geometry() {
        let (mut s, _f) = server(1 << 20, true);
        let mut out = Outbox::default();
        s.handle(&request(header(Opcode::Info, 0, 0, 0, 0), &[]), &mut out);
        let r = responses(&out);
        let info = ExportInfo::parse(&r[0].1).unwrap();
        assert_eq!(info.size, 1 << 20);
        assert_ne!(info.flags & EXPORT_READ_ONLY, 0);
    }
}
