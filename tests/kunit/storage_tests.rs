// SPDX-License-Identifier: GPL-2.0

//! The storage personality's bookkeeping (`kernel::net::storage::ledger`)
//! with plain numbers as requests: declustering, queue accounting, response
//! matching, the retransmit state machine, and hostile responses.

use kernel::prelude::*;

#[kunit_tests(polynic_storage)]
mod tests {
    use kernel::net::storage::{
        frames::{FramePlan, MAX_FRAMES},
        ebd,
        ledger::{Command, Expiry, FrameJob, Framing, Ledger, Limits, Matched, Refused, Unmatched, MAX_EARLY_RESENDS, MAX_REFUSED_MS},
        protocol::{Answer, Operation, Place, RequestFrame},
        rtt::{RttEstimator, INITIAL_RTO_MS, MIN_RTO_MS},
        sequence::Sequence,
        wire::{Finished, Header, Opcode, Status, FINISHED_SPAN, MAX_REQUEST_LEN},
    };
    use kernel::sync::Arc;
    use kernel::prelude::*;

    const PAYLOAD: u32 = 1024;

    /// First sequence number of the test sessions: near the wrap, so every
    /// test crosses it.
    const FIRST_SEQ: u32 = u32::MAX - 2;

    fn ledger(max_queue: u32, window: u32) -> Ledger<u32> {
        ledger_at(max_queue, window, FIRST_SEQ)
    }

    fn ledger_at(max_queue: u32, window: u32, first_seq: u32) -> Ledger<u32> {
        let limits = Limits { max_queue, payload: PAYLOAD, window, max_retries: 2, framing: EBD };
        match Ledger::new(limits, first_seq) {
            Ok(l) => l,
            Err(_) => panic!("ledger allocation failed"),
        }
    }

    fn cmd(op: Operation, length: u32) -> Command {
        Command { op, offset: 1 << 20, length, fua: false }
    }

    fn admit(l: &mut Ledger<u32>, id: u32, c: Command) {
        assert!(l.admit(id, id + 100, c).is_ok());
    }

    /// The framing of EBD, whose headers these cases speak.
    const EBD: Framing = Framing { max_request: MAX_REQUEST_LEN, reads_per_fragment: false, span_bound: true, acks_runs: true };

    /// The EBD header of a frame the ledger decided to send.
    fn hdr(job: &FrameJob) -> Header {
        ebd::request_header(&job.frame, 0, 0)
    }

    /// Matching by EBD headers: what the personality does with a frame
    /// EBD's protocol parsed.
    trait MatchHeader {
        fn match_header(&self, h: &Header) -> Result<Matched, Unmatched>;
    }

    impl MatchHeader for Ledger<u32> {
        fn match_header(&self, h: &Header) -> Result<Matched, Unmatched> {
            match ebd::answer_of(h) {
                Some(answer) => self.match_response(&answer),
                None => panic!("not an answer: {:?}", h),
            }
        }
    }

    /// The response a correct server sends to `job`'s frame `index`.
    fn response(h: &Header, frag_offset: u32, frag_len: u32) -> Header {
        Header { status: Status::Ok, frag_offset, frag_len, ..*h }
    }

    #[test]
    fn declustering_covers_every_byte_once() {
        for (len, count) in [(512u32, 1u32), (1024, 1), (1536, 2), (10240, 10), (10752, 11)] {
            let plan = FramePlan::with_data(len, PAYLOAD).unwrap_or(FramePlan::without_data());
            assert_eq!(plan.count(), count);
            let mut next = 0;
            for i in 0..count {
                let frame = plan.frame(i);
                assert_eq!(frame.map(|(o, _)| o), Some(next));
                let (o, n) = frame.unwrap_or((0, 0));
                assert_eq!(plan.index_of(o, n), Some(i));
                next += n;
            }
            assert_eq!(next, len);
            assert_eq!(plan.frame(count), None);
        }
        assert!(FramePlan::with_data(PAYLOAD * (MAX_FRAMES + 1), PAYLOAD).is_err());
        assert!(FramePlan::with_data(0, PAYLOAD).is_err());
    }

    #[test]
    fn write_frames_go_out_in_order_within_the_window() {
        let mut l = ledger(4, 3);
        admit(&mut l, 0, cmd(Operation::Write, 4 * PAYLOAD));
        admit(&mut l, 1, cmd(Operation::Flush, 0));
        let mut sent = KVec::new();
        while let Some(job) = l.next_frame(0) {
            assert!(sent.push((job.id, hdr(&job).frag_offset, job.data), GFP_KERNEL).is_ok());
        }
        // Window of 3: three of request 0's four frames, nothing else.
        assert_eq!(sent.len(), 3);
        assert_eq!(sent[2], (0, 2 * PAYLOAD, Some((2 * PAYLOAD, PAYLOAD))));
        assert_eq!(l.in_flight(), 3);
        let h = Header { opcode: Opcode::Write, flags: 0, tag: 0, seq: FIRST_SEQ, export: 0, status: Status::Ok, offset: 1 << 20, length: 4 * PAYLOAD, frag_offset: 0, frag_len: PAYLOAD, session: 0, finished: Default::default() };
        // The fourth fragment was never sent, so nothing may acknowledge it,
        // alone or in a run.
        for (o, n) in [(3 * PAYLOAD, PAYLOAD), (0, 4 * PAYLOAD), (2 * PAYLOAD, 2 * PAYLOAD)] {
            assert_eq!(l.match_header(&Header { frag_offset: o, frag_len: n, ..h }), Err(Unmatched::Mismatch));
        }
        // One acknowledgement frees one slot of the window: the fourth frame.
        assert_eq!(l.match_header(&h), Ok(Matched::Frames { id: 0, frames: 0..1, data: None }));
        assert_eq!(l.answer(0, 0..1), None);
        assert_eq!(l.next_frame(0).map(|j| (j.id, hdr(&j).frag_offset)), Some((0, 3 * PAYLOAD)));
        assert_eq!(l.next_frame(0).map(|j| j.id), None);
    }

    #[test]
    fn frames_the_device_refused_go_out_again_first_and_in_order() {
        let mut l = ledger(4, 8);
        admit(&mut l, 0, cmd(Operation::Write, 4 * PAYLOAD));
        admit(&mut l, 1, cmd(Operation::Read, 2 * PAYLOAD));
        let mut jobs = KVec::new();
        for _ in 0..3 {
            let job = l.next_frame(0).unwrap_or_else(|| panic!("no frame"));
            assert!(jobs.push(job, GFP_KERNEL).is_ok());
        }
        assert_eq!(l.in_flight(), 3);
        let h = hdr(&jobs[0]);
        // The device refused the second frame, and the third was not
        // offered: both taken back, newest first.
        assert!(l.unsend(&jobs[2], 0));
        assert!(l.unsend(&jobs[1], 0));
        assert_eq!(l.in_flight(), 1);
        // They never left, so nothing may acknowledge them yet.
        for (o, n) in [(PAYLOAD, PAYLOAD), (0, 2 * PAYLOAD), (2 * PAYLOAD, PAYLOAD)] {
            assert_eq!(l.match_header(&Header { frag_offset: o, frag_len: n, ..h }), Err(Unmatched::Mismatch));
        }
        // Sent again first, in order, then the rest.
        let order: [(u32, u32); 4] = [(0, PAYLOAD), (0, 2 * PAYLOAD), (0, 3 * PAYLOAD), (1, 0)];
        for want in order {
            assert_eq!(l.next_frame(0).map(|j| (j.id, hdr(&j).frag_offset)), Some(want));
        }
        assert!(l.next_frame(0).is_none());
        // Once sent, the second fragment may be acknowledged.
        assert_eq!(
            l.match_header(&Header { frag_offset: PAYLOAD, frag_len: PAYLOAD, ..h }),
            Ok(Matched::Frames { id: 0, frames: 1..2, data: None })
        );
        // A frame of a request that left (its id now another's) is ignored.
        let before = l.in_flight();
        assert_eq!(l.fail(0, EIO), Some(100));
        let after_fail = l.in_flight();
        assert!(after_fail < before);
        admit(&mut l, 0, cmd(Operation::Flush, 0));
        assert!(!l.unsend(&jobs[0], 0));
        assert_eq!(l.in_flight(), after_fail);
        assert_eq!(l.next_frame(0).map(|j| (j.id, hdr(&j).opcode)), Some((0, Opcode::Flush)));
        assert!(l.next_frame(0).is_none());
    }

    #[test]
    fn a_device_that_refuses_for_long_loses_frames_to_the_timers() {
        let mut l = ledger(4, 8);
        admit(&mut l, 0, cmd(Operation::Write, 2 * PAYLOAD));
        let job = l.next_frame(0).unwrap_or_else(|| panic!("no frame"));
        // Refused and taken back again and again, for just under the limit.
        assert!(l.unsend(&job, 10));
        let job = l.next_frame(10 + MAX_REFUSED_MS - 1).unwrap_or_else(|| panic!("no frame"));
        assert!(l.unsend(&job, 10 + MAX_REFUSED_MS - 1));
        // At the limit it stays charged and sent, for the timers.
        let job = l.next_frame(10 + MAX_REFUSED_MS).unwrap_or_else(|| panic!("no frame"));
        assert_eq!(hdr(&job).frag_offset, 0);
        assert!(!l.unsend(&job, 10 + MAX_REFUSED_MS));
        assert_eq!(l.in_flight(), 1);
        // An answer to the request starts the count again.
        let second = l.next_frame(10 + MAX_REFUSED_MS).unwrap_or_else(|| panic!("no frame"));
        assert!(l.progress(0, 2000).is_some());
        assert!(l.unsend(&second, 2000));
    }

    #[test]
    fn write_acknowledgements_may_cover_runs_of_fragments() {
        let mut l = ledger(4, 8);
        admit(&mut l, 1, cmd(Operation::Write, 4 * PAYLOAD - 512));
        let mut last = None;
        while let Some(job) = l.next_frame(0) {
            last = Some(hdr(&job));
        }
        let h = last.unwrap_or_else(|| panic!("no frame"));
        assert_eq!(l.in_flight(), 4);
        let ack = |frag_offset, frag_len| Header { frag_offset, frag_len, ..h };
        // Runs that do not start and end on fragment boundaries match nothing.
        for (o, n) in [(0, PAYLOAD + 512), (512, PAYLOAD), (0, 4 * PAYLOAD), (0, 0)] {
            assert_eq!(l.match_header(&ack(o, n)), Err(Unmatched::Mismatch));
        }
        assert_eq!(l.match_header(&ack(0, 2 * PAYLOAD)), Ok(Matched::Frames { id: 1, frames: 0..2, data: None }));
        assert_eq!(l.answer(1, 0..2), None);
        assert_eq!(l.in_flight(), 2);
        assert_eq!(l.match_header(&ack(PAYLOAD, PAYLOAD)), Err(Unmatched::Duplicate));
        // Overlapping an answered fragment: only the new one counts.
        assert_eq!(l.match_header(&ack(PAYLOAD, 2 * PAYLOAD)), Ok(Matched::Frames { id: 1, frames: 1..3, data: None }));
        assert_eq!(l.answer(1, 1..3), None);
        assert_eq!(l.in_flight(), 1);
        // The last, shorter fragment completes the request.
        let tail = ack(3 * PAYLOAD, PAYLOAD - 512);
        assert_eq!(l.match_header(&tail), Ok(Matched::Frames { id: 1, frames: 3..4, data: None }));
        assert_eq!(l.answer(1, 3..4), Some(101));
        assert_eq!((l.len(), l.in_flight()), (0, 0));
    }

    #[test]
    fn queue_accounting_and_space_signal() {
        let mut l = ledger(2, 64);
        admit(&mut l, 0, cmd(Operation::Read, 512));
        admit(&mut l, 1, cmd(Operation::Read, 512));
        assert_eq!(l.len(), 2);
        assert!(matches!(l.admit(0, 7, cmd(Operation::Read, 512)), Err(Refused::Full(7))));
        assert_eq!(l.take_space_signal(), None);
        assert_eq!(l.remove(1), Some(101));
        assert_eq!(l.take_space_signal(), Some(1));
        assert_eq!(l.take_space_signal(), None);
        assert!(matches!(l.admit(0, 8, cmd(Operation::Read, 512)), Err(Refused::Invalid(8, _))));
        assert!(matches!(l.admit(5, 9, cmd(Operation::Read, 512)), Err(Refused::Invalid(9, _))));
        assert_eq!(l.high_water(), 2);
    }

    #[test]
    fn read_responses_complete_the_request_once() {
        let mut l = ledger(4, 64);
        admit(&mut l, 2, cmd(Operation::Read, 3 * PAYLOAD));
        let job = l.next_frame(0).unwrap_or_else(|| panic!("no frame"));
        assert_eq!((hdr(&job).frag_offset, hdr(&job).frag_len, job.data), (0, PAYLOAD, None));
        assert_eq!(l.in_flight(), 3);
        let h = hdr(&job);
        // Out of order, with a duplicate.
        for (i, expect_done) in [(2u32, false), (0, false), (2, false), (1, true)] {
            let r = response(&h, i * PAYLOAD, PAYLOAD);
            match l.match_header(&r) {
                Ok(Matched::Frames { id, frames, data }) => {
                    assert_eq!((id, frames.clone(), data), (2, i..i + 1, Some((i * PAYLOAD, PAYLOAD))));
                    assert_eq!(l.answer(id, frames).is_some(), expect_done);
                }
                Err(Unmatched::Duplicate) => assert_eq!(i, 2),
                other => panic!("unexpected {:?}", other),
            }
        }
        assert_eq!(l.len(), 0);
        assert_eq!(l.in_flight(), 0);
        // A late copy after completion is stale.
        assert_eq!(l.match_header(&response(&h, 0, PAYLOAD)), Err(Unmatched::Stale));
    }

    /// Request 2, a read of `frames` frames, sent in full.
    fn sent_read(frames: u32) -> (Ledger<u32>, Header) {
        let mut l = ledger(4, 64);
        admit(&mut l, 2, cmd(Operation::Read, frames * PAYLOAD));
        let job = l.next_frame(0).unwrap_or_else(|| panic!("no frame"));
        (l, hdr(&job))
    }

    /// How a request ended, as `end_placing` reports it: the request and
    /// its error, if it failed.
    fn outcome(ended: Option<(u32, Result)>) -> Option<(u32, Option<Error>)> {
        ended.map(|(r, status)| (r, status.err()))
    }

    /// Matches read frame `i` of `h`'s request; the frames it answers.
    fn matched(l: &Ledger<u32>, h: &Header, i: u32) -> core::ops::Range<u32> {
        match l.match_header(&response(h, i * PAYLOAD, PAYLOAD)) {
            Ok(Matched::Frames { frames, .. }) => frames,
            other => panic!("frame {} not matched: {:?}", i, other),
        }
    }

    #[test]
    fn a_read_completes_only_when_every_placing_has_ended() {
        let (mut l, h) = sent_read(2);
        assert_eq!(l.in_flight(), 2);
        let f0 = matched(&l, &h, 0);
        assert_eq!(l.begin_placing(2, f0.clone()), Some(&102));
        // A frame being placed gives its share of the window back at once.
        assert_eq!(l.in_flight(), 1);
        let f1 = matched(&l, &h, 1);
        assert_eq!(l.begin_placing(2, f1.clone()), Some(&102));
        // Every frame answered, but frame 0's data is still being copied.
        assert!(l.end_placing(2, f1, true).is_none());
        assert_eq!(l.len(), 1);
        assert_eq!(outcome(l.end_placing(2, f0, true)), Some((102, None)));
        assert_eq!((l.len(), l.in_flight()), (0, 0));
    }

    #[test]
    fn a_frame_being_placed_is_answered_for_duplicates() {
        let (mut l, h) = sent_read(2);
        let f0 = matched(&l, &h, 0);
        assert!(l.begin_placing(2, f0.clone()).is_some());
        assert_eq!(l.match_header(&response(&h, 0, PAYLOAD)), Err(Unmatched::Duplicate));
        // A copy that failed leaves the frame unanswered: its resend is
        // taken, and the resend charges the window for it again.
        assert!(l.end_placing(2, f0, false).is_none());
        assert_eq!(matched(&l, &h, 0), 0..1);
        assert_eq!((l.len(), l.in_flight()), (1, 1));
        assert!(matches!(l.expire(2, 100_000, 10, |_| true), Expiry::Retry { attempt: 1, .. }));
        assert!(l.next_frame(100_000).is_some());
        assert_eq!(l.in_flight(), 2);
    }

    #[test]
    fn a_request_failing_while_placed_ends_with_the_last_placing() {
        let (mut l, h) = sent_read(2);
        let f0 = matched(&l, &h, 0);
        assert!(l.begin_placing(2, f0.clone()).is_some());
        // The server's refusal, or a teardown, while frame 0 is copied.
        assert_eq!(l.fail(2, EIO), None);
        assert_eq!(l.len(), 1);
        // Frame 1 arrives meanwhile: nothing more is placed into it.
        let f1 = matched(&l, &h, 1);
        assert_eq!(l.begin_placing(2, f1), None);
        assert_eq!(outcome(l.end_placing(2, f0, true)), Some((102, Some(EIO))));
        assert_eq!((l.len(), l.in_flight()), (0, 0));
        // The same when the copy under way fails too.
        let (mut l, h) = sent_read(2);
        let f0 = matched(&l, &h, 0);
        assert!(l.begin_placing(2, f0.clone()).is_some());
        assert_eq!(l.fail(2, EIO), None);
        assert_eq!(outcome(l.end_placing(2, f0, false)), Some((102, Some(EIO))));
        assert_eq!((l.len(), l.in_flight()), (0, 0));
    }

    #[test]
    fn a_failure_after_all_the_data_is_ignored() {
        // The last frame is being placed when a failure for the request
        // comes: it came after the data, as a stale one would.
        let (mut l, h) = sent_read(1);
        let f0 = matched(&l, &h, 0);
        assert!(l.begin_placing(2, f0.clone()).is_some());
        assert_eq!(l.fail(2, EIO), None);
        assert_eq!(outcome(l.end_placing(2, f0, true)), Some((102, None)));
    }

    #[test]
    fn failing_everything_waits_for_the_oldest_placing() {
        let (mut l, h) = sent_read(2);
        admit(&mut l, 3, cmd(Operation::Read, PAYLOAD));
        let f0 = matched(&l, &h, 0);
        assert!(l.begin_placing(2, f0.clone()).is_some());
        // The oldest is being placed: nothing newer is taken before it.
        assert_eq!(l.take_oldest(ENODEV), None);
        assert!(!l.is_empty());
        assert_eq!(outcome(l.end_placing(2, f0, true)), Some((102, Some(ENODEV))));
        assert_eq!(l.take_oldest(ENODEV), Some(103));
        assert!(l.is_empty());
        assert_eq!(l.in_flight(), 0);
    }

    #[test]
    fn the_timer_waits_for_a_placing() {
        let (mut l, h) = sent_read(2);
        let f0 = matched(&l, &h, 0);
        assert!(l.begin_placing(2, f0.clone()).is_some());
        // Long overdue, but an answer is being placed: neither a resend
        // nor a give-up until it is in.
        assert!(matches!(l.expire(2, 1_000_000, 10, |_| true), Expiry::NotYet(1)));
        assert_eq!(l.resend_overdue(1_000_000, 10), 0);
        assert!(l.end_placing(2, f0, true).is_none());
        assert_eq!(l.in_flight(), 1);
        // Then the timer runs as ever: frame 1 alone is charged again.
        for attempt in 1..=2u32 {
            let now = 1_000_000 * u64::from(attempt + 1);
            match l.expire(2, now, 10, |_| true) {
                Expiry::Retry { attempt: a, .. } => assert_eq!(a, attempt),
                _ => panic!("no retry {}", attempt),
            }
            assert!(l.next_frame(now).is_some());
            assert_eq!(l.in_flight(), 1);
        }
        assert!(matches!(l.expire(2, 9_000_000, 10, |_| true), Expiry::GiveUp(102)));
        assert_eq!((l.len(), l.in_flight()), (0, 0));
    }

    #[test]
    fn hostile_responses_are_refused() {
        let mut l = ledger(4, 64);
        admit(&mut l, 1, cmd(Operation::Read, 2 * PAYLOAD));
        let h = l.next_frame(0).map(|j| hdr(&j)).unwrap_or_else(|| panic!("no frame"));
        let bad = [
            (Header { seq: h.seq + 1, ..response(&h, 0, PAYLOAD) }, Unmatched::Stale),
            (Header { tag: 3, ..response(&h, 0, PAYLOAD) }, Unmatched::Stale),
            (Header { tag: 99_999, ..response(&h, 0, PAYLOAD) }, Unmatched::Stale),
            (Header { opcode: Opcode::Write, ..response(&h, 0, PAYLOAD) }, Unmatched::Mismatch),
            (Header { offset: 0, ..response(&h, 0, PAYLOAD) }, Unmatched::Mismatch),
            (Header { length: 4 * PAYLOAD, ..response(&h, 0, PAYLOAD) }, Unmatched::Mismatch),
            (response(&h, 512, PAYLOAD), Unmatched::Mismatch),
            (response(&h, PAYLOAD, 512), Unmatched::Mismatch),
            (response(&h, 2 * PAYLOAD, PAYLOAD), Unmatched::Mismatch),
            // A read's response never covers two frames.
            (response(&h, 0, 2 * PAYLOAD), Unmatched::Mismatch),
        ];
        for (r, why) in bad {
            assert_eq!(l.match_header(&r), Err(why));
        }
        // Nothing was disturbed: the real responses still complete it.
        assert!(l.answer(1, 0..1).is_none());
        assert_eq!(l.answer(1, 1..2), Some(101));
        // A server error fails the request.
        admit(&mut l, 0, cmd(Operation::Write, 512));
        let w = l.next_frame(0).map(|j| hdr(&j)).unwrap_or_else(|| panic!("no frame"));
        let e = Header { status: Status::ReadOnly, ..w };
        assert_eq!(l.match_header(&e), Ok(Matched::Failed { id: 0, err: EROFS }));
    }

    #[test]
    fn timeouts_retransmit_then_give_up() {
        let mut l = ledger(4, 64);
        admit(&mut l, 0, cmd(Operation::Write, 2 * PAYLOAD));
        // Not sent yet: waiting is not a retry.
        assert!(matches!(l.expire(0, 0, 100, |&r| r == 100), Expiry::NotYet(100)));
        while l.next_frame(10).is_some() {}
        // Sent 40 ms ago with a 100 ms timeout: 60 ms to go.
        assert!(matches!(l.expire(0, 50, 100, |&r| r == 100), Expiry::NotYet(60)));
        // Another request under the same id is not this one.
        assert!(matches!(l.expire(0, 500, 100, |&r| r == 7), Expiry::NotFound));
        // Frame 0 acknowledged; a retry resends only frame 1.
        assert!(l.answer(0, 0..1).is_none());
        assert!(matches!(l.expire(0, 500, 100, |_| true), Expiry::Retry { attempt: 1, .. }));
        assert_eq!(l.in_flight(), 0);
        let resent = l.next_frame(600).map(|j| hdr(&j).frag_offset);
        assert_eq!(resent, Some(PAYLOAD));
        assert!(l.next_frame(600).is_none());
        assert!(matches!(l.expire(0, 1000, 100, |_| true), Expiry::Retry { attempt: 2, .. }));
        while l.next_frame(1000).is_some() {}
        assert!(matches!(l.expire(0, 2000, 100, |_| true), Expiry::GiveUp(100)));
        assert_eq!((l.len(), l.in_flight()), (0, 0));
        assert!(matches!(l.expire(0, 3000, 100, |_| true), Expiry::NotFound));
    }

    #[test]
    fn silent_requests_are_resent_early_without_spending_retries() {
        let mut l = ledger(4, 64);
        admit(&mut l, 0, cmd(Operation::Write, 2 * PAYLOAD));
        admit(&mut l, 1, cmd(Operation::Read, PAYLOAD));
        // Queued, not sent: nothing to resend.
        assert_eq!(l.resend_overdue(1000, 200), 0);
        while l.next_frame(0).is_some() {}
        assert!(!l.has_queued());
        // Within the timeout: nothing.
        assert_eq!(l.resend_overdue(199, 200), 0);
        // The write's first fragment is answered at 150: that is progress,
        // and the first answer of a request sent once is a round-trip
        // sample, timed from its first frame.
        assert_eq!(l.progress(0, 150), Some(150));
        assert!(l.answer(0, 0..1).is_none());
        assert_eq!(l.progress(0, 160), None);
        // The read has heard nothing since 0, but the server spoke at 160:
        // nothing is resent until it has been silent for the timeout.
        assert_eq!(l.resend_overdue(359, 200), 0);
        // Then both go out again: the read whole, the write's unanswered
        // fragment only.
        assert_eq!(l.resend_overdue(360, 200), 2);
        assert!(l.has_queued());
        assert_eq!(l.next_frame(360).map(|j| (j.id, hdr(&j).frag_offset)), Some((0, PAYLOAD)));
        assert_eq!(l.next_frame(360).map(|j| (j.id, hdr(&j).opcode)), Some((1, Opcode::Read)));
        assert!(l.next_frame(360).is_none());
        // The read was resent: its answer is no sample (Karn's rule).
        assert_eq!(l.progress(1, 420), None);
        assert!(l.answer(1, 0..1).is_some());
        // After MAX_EARLY_RESENDS only the response timer resends.
        let mut at = 420;
        for _ in 1..MAX_EARLY_RESENDS {
            assert_eq!(l.resend_overdue(at + 199, 200), 0);
            at += 200;
            assert_eq!(l.resend_overdue(at, 200), 1);
            while l.next_frame(at).is_some() {}
        }
        assert_eq!(l.resend_overdue(at + 100_000, 200), 0);
        // Early resends spent no retry: the timer still has both of its own.
        assert!(matches!(l.expire(0, at + 100_000, 100, |_| true), Expiry::Retry { attempt: 1, .. }));
    }

    #[test]
    fn the_retransmission_timeout_follows_the_round_trips() {
        let mut rtt = RttEstimator::new();
        assert_eq!(rtt.srtt_ms(), None);
        assert_eq!(rtt.rto_ms(10_000), INITIAL_RTO_MS);
        // Never above the bound the caller gives, never below the minimum.
        assert_eq!(rtt.rto_ms(300), 300);
        assert_eq!(rtt.rto_ms(10), MIN_RTO_MS);
        // First sample 400: srtt 400, deviation 200, timeout 1200.
        rtt.sample(400);
        assert_eq!((rtt.srtt_ms(), rtt.rto_ms(10_000)), (Some(400), 1200));
        // Steady 400s shrink the deviation: 150, then 112.
        rtt.sample(400);
        assert_eq!((rtt.srtt_ms(), rtt.rto_ms(10_000)), (Some(400), 1000));
        rtt.sample(400);
        assert_eq!(rtt.rto_ms(10_000), 400 + 4 * 112);
        // Resends double it, up to 16 times, until the next sample.
        rtt.back_off();
        assert_eq!(rtt.rto_ms(10_000), 2 * (400 + 4 * 112));
        for _ in 0..8 {
            rtt.back_off();
        }
        assert_eq!(rtt.rto_ms(100_000), 16 * (400 + 4 * 112));
        assert_eq!(rtt.rto_ms(10_000), 10_000);
        // A fast server: the timeout falls to the minimum.
        for _ in 0..64 {
            rtt.sample(1);
        }
        assert_eq!(rtt.rto_ms(10_000), MIN_RTO_MS);
    }

    #[test]
    fn flushes_are_not_resent_early() {
        let mut l = ledger(4, 64);
        admit(&mut l, 0, cmd(Operation::Flush, 0));
        while l.next_frame(0).is_some() {}
        assert_eq!(l.resend_overdue(10_000, 200), 0);
        assert!(matches!(l.expire(0, 10_000, 100, |_| true), Expiry::Retry { attempt: 1, .. }));
    }

    #[test]
    fn teardown_takes_every_request() {
        let mut l = ledger(8, 64);
        for id in [1, 4, 6] {
            admit(&mut l, id, cmd(Operation::Read, 512));
        }
        let _ = l.next_frame(0);
        let mut taken = 0;
        while let Some(r) = l.take_oldest(EIO) {
            assert!(r >= 100);
            taken += 1;
        }
        assert_eq!((taken, l.len(), l.in_flight()), (3, 0, 0));
        assert!(l.next_frame(0).is_none());
    }

    #[test]
    fn failing_everything_held_keeps_the_ledger_usable() {
        // More requests held than the finished window spans, in slots whose
        // order is the reverse of their sequence order: taking them out in
        // slot order would finish the newest first, outside the window, and
        // leave the oldest unfinished mark stuck behind them.
        let held = FINISHED_SPAN + 71;
        let mut l = ledger(held, 4);
        for id in (0..held).rev() {
            admit(&mut l, id, cmd(Operation::Read, 512));
        }
        let mut taken = 0;
        while l.take_oldest(EIO).is_some() {
            taken += 1;
        }
        assert_eq!(taken, held);
        assert_eq!(l.finished(), Finished::starting_at(FIRST_SEQ.wrapping_add(held)));
        admit(&mut l, 7, cmd(Operation::Read, 512));
        assert_eq!(l.next_frame(0).map(|j| hdr(&j).seq), Some(FIRST_SEQ.wrapping_add(held)));
    }

    #[test]
    fn frames_carry_their_sequence_number_and_the_finished_window() {
        let mut l = ledger(8, 64);
        for id in 0..3 {
            admit(&mut l, id, cmd(Operation::Read, 512));
        }
        let jobs: KVec<Header> = {
            let mut v = KVec::new();
            while let Some(j) = l.next_frame(0) {
                assert!(v.push(hdr(&j), GFP_KERNEL).is_ok());
            }
            v
        };
        assert_eq!(jobs.len(), 3);
        for (i, h) in jobs.iter().enumerate() {
            assert_eq!(h.seq, FIRST_SEQ.wrapping_add(i as u32));
            assert_eq!(h.finished, Finished::starting_at(FIRST_SEQ));
        }
        // The second request completes: the next frame tells the server.
        assert!(l.answer(1, 0..1).is_some());
        assert_eq!(l.finished(), Finished { below: FIRST_SEQ, mask: 1 });
        assert!(l.finished().contains(FIRST_SEQ.wrapping_add(1)));
        admit(&mut l, 5, cmd(Operation::Read, 512));
        let next = l.next_frame(0).map(|j| (hdr(&j).seq, hdr(&j).finished));
        assert_eq!(next, Some((FIRST_SEQ.wrapping_add(3), Finished { below: FIRST_SEQ, mask: 1 })));
        // Any way out of the ledger finishes a request: failure, teardown.
        assert!(l.remove(0).is_some());
        assert!(l.take_oldest(EIO).is_some());
        assert!(l.take_oldest(EIO).is_some());
        assert_eq!(l.finished(), Finished::starting_at(FIRST_SEQ.wrapping_add(4)));
    }

    #[test]
    fn a_straggler_holds_back_requests_beyond_the_span_but_not_its_own_retry() {
        // One slow request, then many quick ones that complete at once.
        let mut l = ledger(4, 1024);
        admit(&mut l, 0, cmd(Operation::Read, 512));
        assert!(l.next_frame(0).is_some());
        let mut quick = 0u32;
        while quick < FINISHED_SPAN - 1 {
            admit(&mut l, 1, cmd(Operation::Read, 512));
            assert!(l.next_frame(0).is_some());
            assert!(l.answer(1, 0..1).is_some());
            quick += 1;
        }
        // The next one is a whole span ahead of the straggler: it waits.
        admit(&mut l, 1, cmd(Operation::Read, 512));
        assert!(l.next_frame(10).is_none());
        // The straggler's retransmission is behind it in the queue, but goes.
        assert!(matches!(l.expire(0, 5000, 100, |_| true), Expiry::Retry { .. }));
        assert_eq!(l.next_frame(5000).map(|j| j.id), Some(0));
        assert!(l.next_frame(5000).is_none());
        // Once the straggler is answered, the waiting request goes out.
        assert!(l.answer(0, 0..1).is_some());
        assert_eq!(l.next_frame(5001).map(|j| j.id), Some(1));
    }

    /// How an AoE-like protocol frames requests: a read per fragment, no
    /// finished window, each acknowledgement for one fragment.
    const PER_FRAGMENT: Framing =
        Framing { max_request: 1 << 20, reads_per_fragment: true, span_bound: false, acks_runs: false };

    fn per_fragment_ledger(max_queue: u32, window: u32) -> Ledger<u32> {
        let limits = Limits { max_queue, payload: PAYLOAD, window, max_retries: 2, framing: PER_FRAGMENT };
        match Ledger::new(limits, FIRST_SEQ) {
            Ok(l) => l,
            Err(_) => panic!("ledger allocation failed"),
        }
    }

    /// An answer naming its part by where it starts, with the low eight
    /// bits of the request's sequence number.
    fn at_start(frame: &RequestFrame, op: Operation, at: u64) -> Answer {
        Answer {
            tag: frame.tag,
            seq: frame.seq & 0xff,
            seq_mask: 0xff,
            op,
            place: Place::Start { at },
            outcome: Ok(()),
            data_at: 22,
        }
    }

    #[test]
    fn reads_per_fragment_send_a_frame_each_answered_by_where_it_starts() {
        let mut l = per_fragment_ledger(4, 64);
        let c = cmd(Operation::Read, 3 * PAYLOAD - 512);
        admit(&mut l, 1, c);
        let mut sent = KVec::new();
        while let Some(job) = l.next_frame(0) {
            assert!(sent.push((job.frame.frag_offset, job.frame.frag_len, job.data), GFP_KERNEL).is_ok());
        }
        // One request frame per fragment, the last one shorter, each
        // charged one answer.
        assert_eq!(&sent[..], &[(0, PAYLOAD, None), (PAYLOAD, PAYLOAD, None), (2 * PAYLOAD, PAYLOAD - 512, None)]);
        assert_eq!(l.in_flight(), 3);
        let frame = RequestFrame {
            tag: 1,
            seq: FIRST_SEQ,
            command: c,
            frag_offset: 0,
            frag_len: 0,
            finished: Finished::default(),
        };
        let start = c.offset;
        // Not on a fragment's start, before the request or past its end.
        for at in [start + 512, start - u64::from(PAYLOAD), start + 3 * u64::from(PAYLOAD)] {
            assert_eq!(l.match_response(&at_start(&frame, Operation::Read, at)), Err(Unmatched::Mismatch));
        }
        // Another use of the tag (other sequence bits), another operation.
        let other = RequestFrame { seq: FIRST_SEQ.wrapping_add(1), ..frame };
        assert_eq!(l.match_response(&at_start(&other, Operation::Read, start)), Err(Unmatched::Stale));
        assert_eq!(l.match_response(&at_start(&frame, Operation::Write, start)), Err(Unmatched::Mismatch));
        let last = at_start(&frame, Operation::Read, start + 2 * u64::from(PAYLOAD));
        assert_eq!(
            l.match_response(&last),
            Ok(Matched::Frames { id: 1, frames: 2..3, data: Some((2 * PAYLOAD, PAYLOAD - 512)) })
        );
        assert_eq!(l.answer(1, 2..3), None);
        assert_eq!(l.match_response(&last), Err(Unmatched::Duplicate));
        assert_eq!(l.answer(1, 0..1), None);
        assert_eq!(l.answer(1, 1..2), Some(101));
        assert_eq!((l.len(), l.in_flight()), (0, 0));
    }

    #[test]
    fn without_runs_an_acknowledgement_answers_one_fragment() {
        let mut l = per_fragment_ledger(4, 64);
        let c = cmd(Operation::Write, 2 * PAYLOAD);
        admit(&mut l, 0, c);
        while l.next_frame(0).is_some() {}
        let run = Answer {
            tag: 0,
            seq: FIRST_SEQ,
            seq_mask: u32::MAX,
            op: Operation::Write,
            place: Place::Within { offset: c.offset, length: c.length, frag_offset: 0, frag_len: 2 * PAYLOAD },
            outcome: Ok(()),
            data_at: 22,
        };
        assert_eq!(l.match_response(&run), Err(Unmatched::Mismatch));
        let one = Answer { place: Place::Absolute { at: c.offset + u64::from(PAYLOAD), len: PAYLOAD }, ..run };
        assert_eq!(l.match_response(&one), Ok(Matched::Frames { id: 0, frames: 1..2, data: None }));
        // A failure is the request's, wherever in it the answer points.
        let failed = Answer { outcome: Err(ENOSPC), ..one };
        assert_eq!(l.match_response(&failed), Ok(Matched::Failed { id: 0, err: ENOSPC }));
    }

    #[test]
    fn without_a_finished_window_nothing_is_held_back() {
        let mut l = per_fragment_ledger(FINISHED_SPAN + 8, 1024);
        for id in 0..FINISHED_SPAN + 8 {
            admit(&mut l, id, cmd(Operation::Read, 512));
        }
        let mut sent = 0;
        while l.next_frame(0).is_some() {
            sent += 1;
        }
        assert_eq!(sent, FINISHED_SPAN + 8);
        assert!(!l.held_back());
    }

    #[test]
    fn narrowing_needs_an_empty_ledger_and_never_widens() {
        let mut l = per_fragment_ledger(4, 8);
        assert_eq!(l.narrow(2 * PAYLOAD, 8), Err(EINVAL));
        assert_eq!(l.narrow(PAYLOAD, 16), Err(EINVAL));
        assert_eq!(l.narrow(0, 1), Err(EINVAL));
        assert_eq!(l.narrow(512, 2), Ok(()));
        assert_eq!((l.limits().payload, l.limits().window), (512, 2));
        admit(&mut l, 0, cmd(Operation::Read, 4 * 512));
        // Four fragments of the narrowed payload, two at a time.
        assert_eq!(l.next_frame(0).map(|j| (j.frame.frag_offset, j.frame.frag_len)), Some((0, 512)));
        assert_eq!(l.next_frame(0).map(|j| (j.frame.frag_offset, j.frame.frag_len)), Some((512, 512)));
        assert!(l.next_frame(0).is_none());
        assert_eq!(l.narrow(512, 1), Err(EBUSY));
    }

    #[test]
    fn responses_match_only_their_own_sequence_number() {
        // Two sessions of one export: the same tag, different sequences.
        let mut a = ledger_at(4, 64, 1000);
        let mut b = ledger_at(4, 64, 5000);
        admit(&mut a, 2, cmd(Operation::Read, 512));
        admit(&mut b, 2, cmd(Operation::Read, 512));
        let ha = a.next_frame(0).map(|j| hdr(&j)).unwrap_or_else(|| panic!("no frame"));
        let hb = b.next_frame(0).map(|j| hdr(&j)).unwrap_or_else(|| panic!("no frame"));
        assert_eq!(a.match_header(&response(&hb, 0, 512)), Err(Unmatched::Stale));
        assert_eq!(b.match_header(&response(&ha, 0, 512)), Err(Unmatched::Stale));
        assert!(a.match_header(&response(&ha, 0, 512)).is_ok());
    }

    /// Two queues of one session (`max_queue` each), numbering from
    /// `FIRST_SEQ`.
    fn two_queues(max_queue: u32) -> (Ledger<u32>, Ledger<u32>, Arc<Sequence>) {
        let limits = Limits { max_queue, payload: PAYLOAD, window: 1024, max_retries: 2, framing: EBD };
        let made = Sequence::new(FIRST_SEQ, 2 * max_queue)
            .and_then(|seq| Ok((Ledger::sharing(limits, seq.clone())?, Ledger::sharing(limits, seq.clone())?, seq)));
        match made {
            Ok(m) => m,
            Err(_) => panic!("ledger allocation failed"),
        }
    }

    #[test]
    fn the_sequence_records_finishes_beyond_the_span_in_any_order() {
        let held = 3 * FINISHED_SPAN;
        let seq = match Sequence::new(FIRST_SEQ, held) {
            Ok(s) => s,
            Err(_) => panic!("sequence allocation failed"),
        };
        for i in 0..held {
            assert_eq!(seq.issue().map(|(n, _)| n), Some(FIRST_SEQ.wrapping_add(i)));
        }
        // The newest first, most of them far beyond the window's span.
        for i in (1..held).rev() {
            assert_eq!(seq.finish(FIRST_SEQ.wrapping_add(i)).below, FIRST_SEQ);
        }
        assert_eq!(seq.window(), Finished { below: FIRST_SEQ, mask: u128::MAX });
        // The oldest ends: every later finish was kept, so none is lost.
        assert_eq!(seq.finish(FIRST_SEQ), Finished::starting_at(FIRST_SEQ.wrapping_add(held)));
        // Numbers not in use are ignored.
        assert_eq!(seq.finish(FIRST_SEQ), Finished::starting_at(FIRST_SEQ.wrapping_add(held)));
        assert_eq!(seq.finish(FIRST_SEQ.wrapping_add(held + 5)), Finished::starting_at(FIRST_SEQ.wrapping_add(held)));
    }

    #[test]
    fn the_sequence_refuses_numbers_it_could_not_record() {
        // Room for 10 held requests: a ring of 256 numbers.
        let seq = match Sequence::new(FIRST_SEQ, 10) {
            Ok(s) => s,
            Err(_) => panic!("sequence allocation failed"),
        };
        for _ in 0..256 {
            assert!(seq.issue().is_some());
        }
        assert!(seq.issue().is_none());
        assert_eq!(seq.finish(FIRST_SEQ.wrapping_add(1)).below, FIRST_SEQ);
        assert!(seq.issue().is_none());
        assert_eq!(seq.finish(FIRST_SEQ).below, FIRST_SEQ.wrapping_add(2));
        assert_eq!(seq.issue().map(|(n, _)| n), Some(FIRST_SEQ.wrapping_add(256)));
        assert!(matches!(Sequence::new(0, u32::MAX), Err(e) if e == EINVAL));
    }

    #[test]
    fn queues_waiting_for_the_span_are_taken_once() {
        let seq = match Sequence::new(FIRST_SEQ, 4) {
            Ok(s) => s,
            Err(_) => panic!("sequence allocation failed"),
        };
        assert_eq!(seq.take_waiting(), 0);
        seq.wait(1);
        seq.wait(5);
        seq.wait(1);
        // Beyond the mask's 64 queues: ignored, not an overflow.
        seq.wait(64);
        assert_eq!(seq.take_waiting(), (1 << 1) | (1 << 5));
        assert_eq!(seq.take_waiting(), 0);
    }

    #[test]
    fn queues_number_from_one_sequence_and_tell_each_others_finishes() {
        let (mut a, mut b, _seq) = two_queues(4);
        admit(&mut a, 0, cmd(Operation::Write, 512));
        admit(&mut b, 0, cmd(Operation::Read, 512));
        let ha = a.next_frame(0).map(|j| hdr(&j)).unwrap_or_else(|| panic!("no frame"));
        let hb = b.next_frame(0).map(|j| hdr(&j)).unwrap_or_else(|| panic!("no frame"));
        assert_eq!((ha.seq, hb.seq), (FIRST_SEQ, FIRST_SEQ.wrapping_add(1)));
        // The write finishes on queue A; a request issued on queue B after
        // that tells the server, with no refresh needed.
        assert_eq!(a.answer(0, 0..1), Some(100));
        admit(&mut b, 1, cmd(Operation::Read, 512));
        let next = b.next_frame(0).map(|j| (hdr(&j).seq, hdr(&j).finished));
        assert_eq!(next, Some((FIRST_SEQ.wrapping_add(2), Finished::starting_at(FIRST_SEQ.wrapping_add(1)))));
        // B's first request ends: A learns it when it refreshes.
        assert_eq!(b.answer(0, 0..1), Some(100));
        assert_eq!(a.finished(), Finished::starting_at(FIRST_SEQ.wrapping_add(1)));
        a.refresh_window();
        assert_eq!(a.finished(), Finished::starting_at(FIRST_SEQ.wrapping_add(2)));
        // Each queue matches only its own requests' responses.
        assert_eq!(a.match_header(&response(&hb, 0, 512)), Err(Unmatched::Stale));
    }

    #[test]
    fn a_straggler_on_one_queue_holds_back_the_others_beyond_the_span() {
        let (mut a, mut b, _seq) = two_queues(FINISHED_SPAN + 8);
        admit(&mut a, 0, cmd(Operation::Read, 512));
        assert!(a.next_frame(0).is_some());
        // Queue B fills the span behind A's oldest request, and more.
        for id in 0..FINISHED_SPAN + 4 {
            admit(&mut b, id, cmd(Operation::Read, 512));
        }
        let mut sent = 0;
        while b.next_frame(0).is_some() {
            sent += 1;
        }
        assert_eq!(sent, FINISHED_SPAN - 1);
        assert!(b.held_back());
        // A's request ends; B sends on once it has looked again.
        assert!(a.answer(0, 0..1).is_some());
        assert!(b.next_frame(0).is_none());
        b.refresh_window();
        assert_eq!(b.next_frame(0).map(|j| hdr(&j).seq), Some(FIRST_SEQ.wrapping_add(FINISHED_SPAN)));
    }
}

/// The personality on the veth pair with a probe as the block request: the
/// context its callbacks run in, and a frame whose build fails.
#[kunit_tests(polynic_storage_context)]
mod context {
    use crate::{VETH_A, VETH_B};
    use core::sync::atomic::{AtomicU32, Ordering::Relaxed};
    use kernel::net::{
        device::NetDevice,
        namespace::Namespace,
        ethernet::EtherType,
        packet::{self, PacketHandler},
        skb::SkBuff,
        storage::{
            ebd::Ebd,
            ledger::Command,
            wire::{Direction, Header, ETH_P_EBD_REQUEST, HEADER_LEN},
            BlockBuffer, Operation, Config, Personality, StorageDriver, TimerAction, QUEUE_SHIFT,
        },
    };
    use kernel::prelude::*;
    use kernel::sync::{context, Arc};
    use kernel::time::Delta;

    /// What the probes saw.
    #[derive(Default)]
    struct Seen {
        copies: AtomicU32,
        copies_irqs_off: AtomicU32,
        copies_bh_on: AtomicU32,
        completed: AtomicU32,
        failed: AtomicU32,
    }

    /// A write request whose data copy records its context, and fails on
    /// demand (the frame being built is then freed under the lock).
    #[derive(Clone)]
    struct Probe {
        seen: Arc<Seen>,
        fail: bool,
    }

    impl BlockBuffer for Probe {
        fn copy_out(&self, _offset: u32, dst: &mut [u8]) -> Result {
            self.seen.copies.fetch_add(1, Relaxed);
            if context::interrupts_disabled() {
                self.seen.copies_irqs_off.fetch_add(1, Relaxed);
            }
            if !context::bottom_halves_disabled() {
                self.seen.copies_bh_on.fetch_add(1, Relaxed);
            }
            if self.fail {
                return Err(EFAULT);
            }
            dst.fill(0x5a);
            Ok(())
        }

        fn fill_from(&self, _offset: u32, _skb: &SkBuff, _skb_offset: u32, _len: u32) -> Result {
            Ok(())
        }
    }

    struct Driver(Arc<Seen>);

    impl StorageDriver for Driver {
        type Buffer = Probe;
        type Protocol = Ebd;

        fn complete(&self, _buffer: Probe, status: Result) {
            let counter = if status.is_ok() { &self.0.completed } else { &self.0.failed };
            counter.fetch_add(1, Relaxed);
        }
    }

    /// One 512-byte write.
    const WRITE: Command = Command { op: Operation::Write, offset: 0, length: 512, fua: false };

    /// A personality on veth A whose "server" is veth B, where nobody
    /// answers; its driver counts into the returned `Seen`.
    fn attach_to_silent_peer() -> Result<(Arc<Personality<Driver>>, Arc<Seen>)> {
        attach_with(1, 4, Delta::from_secs(30))
    }

    /// As [`attach_to_silent_peer`], with `queues` queues of `depth`
    /// requests and frames in flight each.
    fn attach_with(queues: u32, depth: u32, timeout: Delta) -> Result<(Arc<Personality<Driver>>, Arc<Seen>)> {
        let a = NetDevice::get_by_name(Namespace::init(), VETH_A)?;
        let b = NetDevice::get_by_name(Namespace::init(), VETH_B)?;
        let seen = Arc::new(Seen::default(), GFP_KERNEL)?;
        let config = Config {
            server: b.mac_addr(),
            frame_size: 0,
            max_queue: depth,
            window: depth,
            queues,
            max_retries: 0,
            timeout,
        };
        Ok((Personality::attach(a, Driver(seen.clone()), Ebd::new(0), config)?, seen))
    }

    #[test]
    fn frames_are_built_with_bottom_halves_off_and_interrupts_on() -> Result {
        let (p, seen) = attach_to_silent_peer()?;
        // The first frame's data copy fails: its half-built buffer is freed
        // where the build failed, under the lock, and counted as a send error.
        assert!(p.queue(0, 0, Probe { seen: seen.clone(), fail: true }, WRITE).is_ok());
        assert!(p.queue(0, 1, Probe { seen: seen.clone(), fail: false }, WRITE).is_ok());
        let stats = p.stats();
        assert_eq!(seen.copies.load(Relaxed), 2);
        assert_eq!(seen.copies_irqs_off.load(Relaxed), 0);
        assert_eq!(seen.copies_bh_on.load(Relaxed), 0);
        assert_eq!(stats.tx_errors, 1);
        assert_eq!(stats.tx_frames, 1);
        // Nobody answers on the peer: detaching fails both requests, once.
        p.detach();
        assert_eq!(seen.failed.load(Relaxed), 2);
        assert_eq!(seen.completed.load(Relaxed), 0);
        Ok(())
    }

    #[test]
    fn the_personality_resends_unanswered_requests_before_the_driver_timer() -> Result {
        let (p, seen) = attach_to_silent_peer()?;
        assert!(p.queue(0, 0, Probe { seen: seen.clone(), fail: false }, WRITE).is_ok());
        assert_eq!(p.stats().tx_frames, 1);
        // Nobody answers: with no round trip timed yet, the timer resends
        // after the initial timeout (1 s), from softirq.
        kernel::time::delay::fsleep(Delta::from_millis(1600));
        let stats = p.stats();
        assert_eq!(stats.early_resends, 1);
        assert_eq!(stats.tx_frames, 2);
        assert_eq!(stats.retransmits, 0);
        // The timeout backed off after the resend: 2 s until an answer.
        assert_eq!(stats.rto_ms, 2000);
        assert_eq!(seen.copies.load(Relaxed), 2);
        assert_eq!(seen.copies_irqs_off.load(Relaxed), 0);
        assert_eq!(seen.copies_bh_on.load(Relaxed), 0);
        // Detaching stops the timer (and fails the request once).
        p.detach();
        assert_eq!(seen.failed.load(Relaxed), 1);
        kernel::time::delay::fsleep(Delta::from_millis(100));
        assert_eq!(p.stats().tx_frames, 2);
        Ok(())
    }

    /// What the "server" side of the veth pair saw of the request frames.
    #[derive(Default)]
    struct Wire {
        /// Frames per queue, by the tag's queue bits.
        frames: [AtomicU32; 2],
        /// The first frame's sequence number.
        first_seq: AtomicU32,
        /// `finished.below` of the last frame of queue 1.
        last_below_q1: AtomicU32,
        /// Tags whose queue part was not 0 or 1.
        odd_tags: AtomicU32,
        /// The most any frame of queue 1 was ahead of the first frame's
        /// sequence number.
        most_ahead_q1: AtomicU32,
    }

    struct Tap(Arc<Wire>);

    impl PacketHandler for Tap {
        fn receive(&self, skb: SkBuff, _dev: &NetDevice) {
            let mut raw = [0u8; HEADER_LEN];
            let Ok(h) = skb.copy_bits(0, &mut raw).and_then(|()| Header::parse_header(&raw, Direction::Request).map_err(|_| EINVAL)) else {
                return;
            };
            let queue = (h.tag >> QUEUE_SHIFT) as usize;
            if queue > 1 {
                self.0.odd_tags.fetch_add(1, Relaxed);
                return;
            }
            if self.0.frames[0].load(Relaxed) + self.0.frames[1].load(Relaxed) == 0 {
                self.0.first_seq.store(h.seq, Relaxed);
            }
            if queue == 1 {
                self.0.last_below_q1.store(h.finished.below, Relaxed);
                let ahead = h.seq.wrapping_sub(self.0.first_seq.load(Relaxed));
                self.0.most_ahead_q1.fetch_max(ahead, Relaxed);
            }
            self.0.frames[queue].fetch_add(1, Relaxed);
        }
    }

    /// A tap on veth B, the "server" side, counting request frames.
    fn tap_on_peer() -> Result<(Pin<KBox<packet::Registration<Tap>>>, Arc<Wire>)> {
        let b = NetDevice::get_by_name(Namespace::init(), VETH_B)?;
        let wire = Arc::new(Wire::default(), GFP_KERNEL)?;
        let tap = KBox::pin_init(
            packet::Registration::new(EtherType(ETH_P_EBD_REQUEST), Some(b), Tap(wire.clone())),
            GFP_KERNEL,
        )?;
        Ok((tap, wire))
    }

    /// Waits up to a second for `wire` to have seen `q0` and `q1` frames
    /// (or more: the personality's timer may resend).
    fn wait_for(wire: &Wire, q0: u32, q1: u32) -> bool {
        for _ in 0..100 {
            if wire.frames[0].load(Relaxed) >= q0 && wire.frames[1].load(Relaxed) >= q1 {
                return true;
            }
            kernel::time::delay::fsleep(Delta::from_millis(10));
        }
        false
    }

    #[test]
    fn queues_tag_their_frames_and_share_the_finished_window() -> Result {
        let (tap, wire) = tap_on_peer()?;
        let (p, seen) = attach_with(2, 4, Delta::from_millis(10))?;
        assert_eq!(p.queues(), 2);
        // One write on each queue, under the same id: each queue has its own.
        assert!(p.queue(0, 0, Probe { seen: seen.clone(), fail: false }, WRITE).is_ok());
        assert!(p.queue(1, 0, Probe { seen: seen.clone(), fail: false }, WRITE).is_ok());
        assert!(p.queue(2, 0, Probe { seen: seen.clone(), fail: false }, WRITE).is_err());
        assert!(wait_for(&wire, 1, 1));
        // Queue 0's write times out (no retries; an early resend by the
        // personality's timer may put that off): it is finished, and the
        // next request on queue 1 tells the server so.
        expire_until_ended(&p, 0, 0);
        assert_eq!(seen.failed.load(Relaxed), 1);
        assert!(p.queue(1, 1, Probe { seen: seen.clone(), fail: false }, WRITE).is_ok());
        assert!(wait_for(&wire, 1, 2));
        let first = wire.first_seq.load(Relaxed);
        assert_eq!(wire.last_below_q1.load(Relaxed), first.wrapping_add(1));
        assert_eq!(wire.odd_tags.load(Relaxed), 0);
        // Counters per queue add up to the personality's.
        let (q0, _) = p.queue_stats(0).ok_or(EINVAL)?;
        let (q1, len1) = p.queue_stats(1).ok_or(EINVAL)?;
        assert_eq!((q0.requests, q0.timeouts, q0.failed, q1.requests, len1), (1, 1, 1, 2, 2));
        assert_eq!(p.stats().requests, 3);
        assert_eq!(p.queue_len(), 2);
        p.detach();
        assert_eq!(seen.failed.load(Relaxed), 3);
        drop(tap);
        Ok(())
    }

    /// Calls `expire` on request `id` of `queue` until it is ended (an
    /// early resend by the personality's timer may put that off).
    fn expire_until_ended(p: &Personality<Driver>, queue: u32, id: u32) {
        let mut tries = 0;
        while let TimerAction::Rearm(after) = p.expire(queue, id, |_| true) {
            tries += 1;
            assert!(tries < 100);
            kernel::time::delay::fsleep(after);
        }
    }

    #[test]
    fn a_queue_held_back_by_another_queues_request_sends_once_it_ends() -> Result {
        const SPAN: u32 = kernel::net::storage::wire::FINISHED_SPAN;
        let (tap, wire) = tap_on_peer()?;
        let (p, seen) = attach_with(2, SPAN + 8, Delta::from_millis(200))?;
        let probe = Probe { seen: seen.clone(), fail: false };
        // Queue 0's request is the oldest; queue 1 fills the span behind it.
        assert!(p.queue(0, 0, probe.clone(), WRITE).is_ok());
        for id in 0..SPAN + 1 {
            assert!(p.queue(1, id, probe.clone(), WRITE).is_ok());
        }
        assert!(wait_for(&wire, 1, SPAN - 1));
        assert_eq!(wire.most_ahead_q1.load(Relaxed), SPAN - 1);
        assert_eq!(p.queue_len(), SPAN + 2);
        // Queue 0's request ends: the span moves on by one, and queue 1's
        // next request goes out (the last still waits, for queue 1's own
        // oldest).
        expire_until_ended(&p, 0, 0);
        let mut waited = 0;
        while wire.most_ahead_q1.load(Relaxed) < SPAN && waited < 100 {
            kernel::time::delay::fsleep(Delta::from_millis(10));
            waited += 1;
        }
        kernel::time::delay::fsleep(Delta::from_millis(100));
        assert_eq!(wire.most_ahead_q1.load(Relaxed), SPAN);
        assert_eq!(wire.odd_tags.load(Relaxed), 0);
        p.detach();
        assert_eq!(seen.failed.load(Relaxed), SPAN + 2);
        drop(tap);
        Ok(())
    }
}
