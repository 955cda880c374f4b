//! Turning request frames into response frames. No I/O on the network
//! here, so the protocol handling is testable on its own.
//!
//! A frame goes through these gates, in order, and is counted at the first
//! that stops it:
//!
//! 1. **source**: a group (multicast or broadcast), all-zero or the
//!    server's own source address is no client's; answering it would spray
//!    responses over the segment or back at the server (`bad_source`);
//! 2. **version**: a version 1 frame is counted (`v1`), logged once a minute
//!    per client, and a version 1 Info request is refused in version 1 so
//!    that an old client fails at once; any other version or malformed
//!    header is `malformed`;
//! 3. **addressing**: only frames sent to the interface's own address, and
//!    Info requests broadcast for discovery, are served; in promiscuous mode
//!    the socket sees other hosts' traffic too (`misaddressed`);
//! 4. **export and access**: no such export, or a client the export's
//!    `--allow` rules do not list (`denied`), is answered with that status;
//!    Info is answered here, outside the request sequence;
//! 5. **session**: the frame's finished window is merged into its session
//!    (see [`crate::session`]) and a frame of a finished request is dropped
//!    without an answer (`stale`);
//! 6. the request is executed and answered.

use crate::{
    access::{Access, Grant},
    export::{Export, Mapping},
    notice::{mac_string, Notices},
    outbox::Outbox,
    session::{Session, SessionKey, Sessions, MAX_SESSIONS},
    socket::MAX_FRAME,
};
use polynic_abi::ebd::{
    payload_per_frame, peek_version, v1_refusal, Direction, ExportInfo, Finished, Header, Opcode, Status,
    ETH_P_EBD_RESPONSE, EXPORT_DISCARD, EXPORT_READ_ONLY, EXPORT_WRITE_ZEROES, FLAG_FUA, HEADER_LEN, SECTOR_SIZE,
    V1_HEADER_LEN,
};
use std::{
    io::IoSlice,
    sync::Arc,
};

/// Ethernet header length.
pub const ETH_HLEN: usize = 14;

/// Most fragments written by one vectored write (Linux's `UIO_MAXIOV`).
const MAX_RUN: usize = 1024;

/// What precedes a response's payload: the Ethernet and EBD headers.
const RESPONSE_PREFIX: usize = ETH_HLEN + HEADER_LEN;

/// The broadcast address: only Info requests (discovery) may use it.
const BROADCAST: [u8; 6] = [0xff; 6];

/// Largest read payload per frame the server could ever send: its frames
/// are at most [`MAX_FRAME`] bytes, what it can receive itself. A read
/// asking for more is malformed; one asking for more than the link carries
/// *now* (its MTU was lowered) is only unanswered.
const LARGEST_PAYLOAD: u32 = match payload_per_frame((MAX_FRAME - ETH_HLEN) as u32) {
    Some(p) => p,
    None => 0,
};

/// Counters the server prints when it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Request frames handled (well-formed and addressed to the server).
    pub requests: u64,
    /// Frames dropped as malformed (including unknown versions).
    pub malformed: u64,
    /// Responses carrying an error status.
    pub errors: u64,
    /// Response frames produced.
    pub responses: u64,
    /// Frames of requests the client had finished: late duplicates, never
    /// executed, never answered.
    pub stale: u64,
    /// Frames of protocol version 1.
    pub v1: u64,
    /// Frames from a group (multicast, broadcast), all-zero or the
    /// server's own address.
    pub bad_source: u64,
    /// Frames not addressed to the server: another host's (promiscuous
    /// mode), multicast, or broadcast other than an Info request.
    pub misaddressed: u64,
    /// Requests of clients an export's rules do not allow.
    pub denied: u64,
    /// Reads asking for larger frames than the link carries now (its MTU
    /// was lowered); left unanswered for the client to retransmit.
    pub unframeable: u64,
    /// Request frames lost before the server saw them, because its
    /// receive ring was full (the client resends them).
    pub ring_full: u64,
}

impl std::ops::AddAssign for Counters {
    fn add_assign(&mut self, o: Counters) {
        self.requests += o.requests;
        self.malformed += o.malformed;
        self.errors += o.errors;
        self.responses += o.responses;
        self.stale += o.stale;
        self.v1 += o.v1;
        self.bad_source += o.bad_source;
        self.misaddressed += o.misaddressed;
        self.denied += o.denied;
        self.unframeable += o.unframeable;
        self.ring_full += o.ring_full;
    }
}

/// What every serving thread shares: the exports, who may use them, the
/// sessions and the rate-limited log.
pub struct Service {
    exports: Vec<Export>,
    access: Access,
    sessions: Sessions,
    notices: Notices,
}

impl Service {
    /// Serves `exports` under `access`, logging to `notices`.
    pub fn new(exports: Vec<Export>, access: Access, notices: Notices) -> Self {
        Service { exports, access, sessions: Sessions::new(MAX_SESSIONS), notices }
    }

    /// The rate-limited log.
    pub fn notices(&self) -> &Notices {
        &self.notices
    }

    /// Makes every export's reads copy from now on: sending from a mapping
    /// failed, and which export's file was cut short is not known. Returns
    /// whether any export was answering from its mapping.
    pub fn stop_mappings(&self) -> bool {
        self.exports.iter().fold(false, |any, e| e.stop_mapping() | any)
    }
}

/// Where a full outbox goes: sent on the socket in the daemon, collected
/// in tests.
pub type Send<'s> = dyn FnMut(&Outbox) + 's;

/// Serves every export to every allowed client on one interface; one per
/// serving thread.
pub struct Server {
    service: Arc<Service>,
    local: [u8; 6],
    /// Largest read payload per frame the link carries now (0: not even a
    /// sector).
    max_payload: u32,
    /// What it has done so far.
    pub counters: Counters,
}

/// Largest read payload per frame on a link of `mtu`, capped at what the
/// server can receive itself.
fn plan(mtu: u32) -> Option<u32> {
    payload_per_frame(mtu.min((MAX_FRAME - ETH_HLEN) as u32))
}

impl Server {
    /// A server answering from `local` on a link of `mtu`; `None` if the
    /// link cannot carry one sector per frame.
    pub fn new(service: Arc<Service>, local: [u8; 6], mtu: u32) -> Option<Self> {
        Some(Server { service, local, max_payload: plan(mtu)?, counters: Counters::default() })
    }

    /// Follows the interface's address and MTU (re-read after an error and
    /// periodically): reads are answered in frames the link carries now.
    /// Returns whether the frame size changed.
    pub fn set_link(&mut self, local: [u8; 6], mtu: u32) -> bool {
        self.local = local;
        let before = self.max_payload;
        self.max_payload = plan(mtu).unwrap_or(0);
        before != self.max_payload
    }

    /// Largest read payload per frame it answers with now.
    pub fn max_payload(&self) -> u32 {
        self.max_payload
    }

    /// Handles received Ethernet frames in order. Responses go to `out`,
    /// which is handed to `send` whenever it is full and once at the end
    /// (and is then cleared and settled), so memory stays within the
    /// outbox's bound however much a batch asks for. Consecutive fragments
    /// of one write that arrive together are written with one vectored
    /// write and acknowledged with one response covering them all.
    pub fn handle_batch<'f>(
        &mut self,
        frames: impl IntoIterator<Item = &'f [u8]>,
        out: &mut Outbox,
        send: &mut Send<'_>,
    ) {
        let mut run: Option<WriteRun<'f>> = None;
        for frame in frames {
            let Some(request) = self.admit(frame, out, send) else {
                continue;
            };
            let Some(request) = self.route(request, out, send) else {
                continue;
            };
            if let Some(r) = run.as_mut() {
                if r.extend(&request) {
                    continue;
                }
            }
            if let Some(r) = run.take() {
                self.write(r, out, send);
            }
            if request.request.header.opcode == Opcode::Write {
                run = Some(WriteRun::new(request));
            } else {
                self.execute(&request, out, send);
            }
        }
        if let Some(r) = run {
            self.write(r, out, send);
        }
        if out.count() > 0 {
            send(out);
        }
        out.clear();
        out.settle();
    }

    fn replies<'a>(&'a mut self, dst: [u8; 6], out: &'a mut Outbox, send: &'a mut Send<'_>) -> Replies<'a> {
        Replies { out, send, counters: &mut self.counters, dst, src: self.local }
    }

    /// Gates 1 to 3: source, version, addressing. Returns the parsed
    /// request, counted, if it passes.
    fn admit<'f>(&mut self, frame: &'f [u8], out: &mut Outbox, send: &mut Send<'_>) -> Option<Request<'f>> {
        let (Some(dst), Some(src), Some(payload)) = (frame.get(0..6), frame.get(6..12), frame.get(ETH_HLEN..)) else {
            self.counters.malformed += 1;
            return None;
        };
        let mut client = [0u8; 6];
        client.copy_from_slice(src);
        if client[0] & 1 != 0 || client == [0; 6] || client == self.local {
            self.counters.bad_source += 1;
            return None;
        }
        let to_us = dst == self.local;
        let broadcast = dst == BROADCAST;
        if peek_version(payload) == Some(1) {
            if !to_us && !broadcast {
                self.counters.misaddressed += 1;
            } else {
                self.refuse_v1(client, payload, out, send);
            }
            return None;
        }
        let Ok((header, payload)) = Header::parse(payload, Direction::Request) else {
            self.counters.malformed += 1;
            return None;
        };
        let served = to_us || (broadcast && header.opcode == Opcode::Info);
        if !served {
            self.counters.misaddressed += 1;
            return None;
        }
        self.counters.requests += 1;
        Some(Request { client, header, payload })
    }

    /// A version 1 client: logged (rate-limited), and its Info request
    /// answered with a version 1 refusal so it fails at once.
    fn refuse_v1(&mut self, client: [u8; 6], payload: &[u8], out: &mut Outbox, send: &mut Send<'_>) {
        self.counters.v1 += 1;
        self.service.notices.note("v1", client, || {
            format!("client {} speaks EBD protocol v1; this server speaks v2", mac_string(&client))
        });
        let mut refusal = [0u8; V1_HEADER_LEN];
        if let Some(n) = v1_refusal(payload, &mut refusal) {
            self.replies(client, out, send).raw(&refusal[..n]);
        }
    }

    /// Gates 4 and 5: export, access, session. Answers Info (and refusals)
    /// itself; returns a request to execute.
    fn route<'f>(&mut self, r: Request<'f>, out: &mut Outbox, send: &mut Send<'_>) -> Option<Admitted<'f>> {
        let service = self.service.clone();
        let h = r.header;
        let Some(export) = service.exports.get(usize::from(h.export)) else {
            self.replies(r.client, out, send).status(&h, Status::NoSuchExport);
            return None;
        };
        let grant = service.access.grant(h.export, &r.client);
        if grant == Grant::Denied {
            self.counters.denied += 1;
            self.replies(r.client, out, send).status(&h, Status::Denied);
            return None;
        }
        if h.opcode == Opcode::Info {
            let mut info = export.info();
            if grant == Grant::ReadOnly {
                info.flags = (info.flags | EXPORT_READ_ONLY) & !(EXPORT_DISCARD | EXPORT_WRITE_ZEROES);
            }
            let reply = Header { length: ExportInfo::LEN as u32, frag_offset: 0, frag_len: ExportInfo::LEN as u32, ..h };
            let mut to = self.replies(r.client, out, send);
            // Cannot fail: the payload area is exactly the encoded size.
            let _ = info.encode(to.frame(&reply, Status::Ok, ExportInfo::LEN));
            return None;
        }
        // A client never sends a frame of a request outside its window's
        // span; one that says its own request is finished is stale.
        if !h.finished.admits(h.seq) {
            if h.finished.contains(h.seq) {
                self.counters.stale += 1;
            } else {
                self.counters.malformed += 1;
            }
            return None;
        }
        let key = SessionKey { client: r.client, export: h.export, session: h.session };
        let session = service.sessions.get(key, &h.finished);
        // Rule 1 of `crate::session`: learn before executing.
        session.learn(&h.finished);
        Some(Admitted { request: r, session, read_only: grant == Grant::ReadOnly })
    }

    /// Executes and answers every request but Info and Write, unless its
    /// request is finished.
    fn execute(&mut self, a: &Admitted<'_>, out: &mut Outbox, send: &mut Send<'_>) {
        let service = self.service.clone();
        let h = &a.request.header;
        let Some(export) = service.exports.get(usize::from(h.export)) else {
            return;
        };
        let done = match h.opcode {
            Opcode::Read | Opcode::Flush => {
                // Neither changes the export, so the check need not cover
                // the execution.
                if a.session.unless_finished(h.seq, || ()).is_none() {
                    self.counters.stale += 1;
                    return;
                }
                if h.opcode == Opcode::Read {
                    return self.read(export, a.request.client, h, out, send);
                }
                export.flush()
            }
            Opcode::Discard | Opcode::WriteZeroes => {
                // Rule 2 of `crate::session`: check and execute under the
                // session's read lock; answer after releasing it.
                let done = a.session.unless_finished(h.seq, || {
                    if a.read_only {
                        Err(Status::ReadOnly)
                    } else if h.opcode == Opcode::Discard {
                        export.discard(h.offset, u64::from(h.length))
                    } else {
                        export.write_zeroes(h.offset, u64::from(h.length))
                    }
                });
                let Some(done) = done else {
                    self.counters.stale += 1;
                    return;
                };
                done
            }
            Opcode::Info | Opcode::Write => Err(Status::Invalid),
        };
        self.replies(a.request.client, out, send).status(h, done.err().unwrap_or(Status::Ok));
    }

    /// Writes a run of fragments and acknowledges them with one response,
    /// unless the write is finished.
    fn write(&mut self, mut run: WriteRun<'_>, out: &mut Outbox, send: &mut Send<'_>) {
        let service = self.service.clone();
        let h = Header { frag_len: run.end - run.first.frag_offset, ..run.first };
        let Some(export) = service.exports.get(usize::from(h.export)) else {
            return;
        };
        let frames = run.parts.len() as u64;
        // Rule 2 of `crate::session`.
        let done = run.session.clone().unless_finished(h.seq, || {
            if run.read_only {
                return Err(Status::ReadOnly);
            }
            // The whole request must lie on the export, as for reads: a
            // write that runs past the end is refused in every fragment, not
            // written in the fragments that happen to fit.
            export.check_range(h.offset, u64::from(h.length))?;
            export.write_vectored(h.offset + u64::from(h.frag_offset), &mut run.parts, h.flags & FLAG_FUA != 0)
        });
        let Some(done) = done else {
            self.counters.stale += frames;
            return;
        };
        self.replies(run.client, out, send).status(&h, done.err().unwrap_or(Status::Ok));
    }

    /// A read answers in frames of the size the request's `frag_len` asks
    /// for (the client's declustering unit). From a mapped export, each
    /// frame is its headers and a span of the mapping, which the kernel
    /// copies into the frame as it sends it. Otherwise the frames are built
    /// in runs that fit the outbox: each run's headers first, then one
    /// vectored read fills every payload of the run from the export.
    fn read(&mut self, export: &Export, client: [u8; 6], h: &Header, out: &mut Outbox, send: &mut Send<'_>) {
        let unit = h.frag_len;
        if unit == 0 || unit > LARGEST_PAYLOAD || unit % SECTOR_SIZE != 0 {
            return self.replies(client, out, send).status(h, Status::Invalid);
        }
        if unit > self.max_payload {
            // The link's MTU was lowered under the client's frame size:
            // answering would only meet EMSGSIZE, and refusing would fail
            // the client's I/O for what may be a passing change. Left
            // unanswered, the client retransmits.
            self.counters.unframeable += 1;
            let max = self.max_payload;
            self.service.notices.note("unframeable", client, || {
                format!(
                    "client {} reads in {unit}-byte frames; the link carries {max} now (MTU lowered?): not answered",
                    mac_string(&client)
                )
            });
            return;
        }
        let mut to = self.replies(client, out, send);
        if let Err(s) = export.check_range(h.offset, u64::from(h.length)) {
            return to.status(h, s);
        }
        if let Some(mapping) = export.mapping() {
            let mut frag_offset = 0;
            while frag_offset < h.length {
                let frag_len = unit.min(h.length - frag_offset);
                let at = h.offset + u64::from(frag_offset);
                if !to.mapped_frame(&Header { frag_offset, frag_len, ..*h }, mapping, at, frag_len as usize) {
                    // Cannot happen: the range was checked against the
                    // export, which the mapping covers whole.
                    return to.status(h, Status::IoError);
                }
                frag_offset += frag_len;
            }
            return;
        }
        let mut frag_offset = 0;
        while frag_offset < h.length {
            to.room(RESPONSE_PREFIX + unit.min(h.length - frag_offset) as usize);
            let first = to.out.count();
            let start = frag_offset;
            // The first frame of a run always goes in (room was made for
            // it), so every pass makes progress.
            while frag_offset < h.length {
                let frag_len = unit.min(h.length - frag_offset);
                if frag_offset > start && !to.out.fits(RESPONSE_PREFIX + frag_len as usize) {
                    break;
                }
                to.frame(&Header { frag_offset, frag_len, ..*h }, Status::Ok, frag_len as usize);
                frag_offset += frag_len;
            }
            let mut payloads = to.out.tails_from(first, RESPONSE_PREFIX);
            if let Err(status) = export.read_vectored(h.offset + u64::from(start), &mut payloads) {
                drop(payloads);
                // One error response replaces this run's data frames (runs
                // sent already are answered by it too: the client fails the
                // whole request).
                to.retract_to(first);
                return to.status(h, status);
            }
        }
    }
}

/// A parsed request frame that passed the source, version and address
/// gates.
struct Request<'f> {
    client: [u8; 6],
    header: Header,
    payload: &'f [u8],
}

/// A request of a client allowed to use its export, in its session.
struct Admitted<'f> {
    request: Request<'f>,
    session: Arc<Session>,
    read_only: bool,
}

/// Consecutive fragments of one write, received together.
struct WriteRun<'f> {
    client: [u8; 6],
    session: Arc<Session>,
    read_only: bool,
    /// The first fragment's header.
    first: Header,
    /// Where in the request the run ends.
    end: u32,
    parts: Vec<IoSlice<'f>>,
}

impl<'f> WriteRun<'f> {
    fn new(a: Admitted<'f>) -> Self {
        let h = a.request.header;
        WriteRun {
            client: a.request.client,
            session: a.session,
            read_only: a.read_only,
            first: h,
            end: h.frag_offset + h.frag_len,
            parts: vec![IoSlice::new(a.request.payload)],
        }
    }

    /// Appends `a` if it is the next fragment of the same write.
    fn extend(&mut self, a: &Admitted<'f>) -> bool {
        let (f, b) = (&self.first, &a.request.header);
        let same = a.request.client == self.client
            && b.opcode == Opcode::Write
            && (b.tag, b.seq, b.session, b.export, b.offset, b.length, b.flags)
                == (f.tag, f.seq, f.session, f.export, f.offset, f.length, f.flags)
            && b.frag_offset == self.end
            && self.parts.len() < MAX_RUN;
        if same {
            self.end += b.frag_len;
            self.parts.push(IoSlice::new(a.request.payload));
        }
        same
    }
}

/// Where the responses to one request go, and what they are counted as.
struct Replies<'a> {
    out: &'a mut Outbox,
    send: &'a mut Send<'a>,
    counters: &'a mut Counters,
    dst: [u8; 6],
    src: [u8; 6],
}

impl Replies<'_> {
    /// Makes room for a frame of `size` bytes: sends what the outbox holds
    /// if the frame would take it past its bounds.
    fn room(&mut self, size: usize) {
        if !self.out.fits(size) {
            if self.out.count() > 0 {
                (self.send)(self.out);
                self.out.clear();
            }
            self.out.make_room(size);
        }
    }

    /// The Ethernet header of a response, then room for `len` more bytes.
    fn push(&mut self, len: usize) -> &mut [u8] {
        self.room(ETH_HLEN + len);
        self.counters.responses += 1;
        let (dst, src) = (self.dst, self.src);
        let buf = self.out.push(ETH_HLEN + len);
        Self::ethernet(buf, dst, src);
        &mut buf[ETH_HLEN..]
    }

    /// Writes a response's Ethernet header at the start of `buf`.
    fn ethernet(buf: &mut [u8], dst: [u8; 6], src: [u8; 6]) {
        buf[0..6].copy_from_slice(&dst);
        buf[6..12].copy_from_slice(&src);
        buf[12..ETH_HLEN].copy_from_slice(&ETH_P_EBD_RESPONSE.to_be_bytes());
    }

    /// Appends a response frame with header `h` (status `status`) and room
    /// for `payload_len` payload bytes (at most a jumbo frame's), which the
    /// caller fills; returns that payload.
    fn frame(&mut self, h: &Header, status: Status, payload_len: usize) -> &mut [u8] {
        if status != Status::Ok {
            self.counters.errors += 1;
        }
        let buf = self.push(HEADER_LEN + payload_len);
        // Cannot fail: the buffer holds the header.
        let _ = Header { status, finished: Finished::default(), ..*h }.encode(buf);
        &mut buf[HEADER_LEN..]
    }

    /// Appends a response with header `h` (status Ok) whose payload is
    /// `len` bytes of `mapping` from `offset` on; false (nothing appended)
    /// if those lie outside the mapping.
    fn mapped_frame(&mut self, h: &Header, mapping: &Arc<Mapping>, offset: u64, len: usize) -> bool {
        let head = ETH_HLEN + HEADER_LEN;
        self.room(head);
        let Some(buf) = self.out.push_mapped(head, mapping, offset, len) else {
            return false;
        };
        self.counters.responses += 1;
        Self::ethernet(buf, self.dst, self.src);
        // Cannot fail: the buffer holds the header.
        let _ = Header { status: Status::Ok, finished: Finished::default(), ..*h }.encode(&mut buf[ETH_HLEN..]);
        true
    }

    /// Appends a response without payload.
    fn status(&mut self, h: &Header, status: Status) {
        self.frame(h, status, 0);
    }

    /// Appends a response whose EBD part is `payload` as is (an error).
    fn raw(&mut self, payload: &[u8]) {
        self.counters.errors += 1;
        self.push(payload.len()).copy_from_slice(payload);
    }

    /// Takes back every frame appended from the `first` on.
    fn retract_to(&mut self, first: usize) {
        let n = self.out.retract_to(first);
        self.counters.responses = self.counters.responses.saturating_sub(n as u64);
    }
}

#[cfg(test)]
mod tests;
