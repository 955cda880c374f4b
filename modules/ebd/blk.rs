// SPDX-License-Identifier: GPL-2.0

//! The block side of an EBD disk: blk-mq requests become storage
//! personality commands, and the personality's completions end them.

use kernel::{
    block::mq::{self, Op, Operations, TimeoutAction},
    net::storage::{ebd::Ebd as EbdProtocol, Command, Operation, Personality, Refused, StorageDriver, TimerAction},
    prelude::*,
    sync::{aref::ARef, Arc, ArcBorrow},
};

/// The blk-mq operations of every EBD disk.
pub(crate) struct Ebd;

/// Ends requests when the personality reports them complete.
pub(crate) struct Completer;

impl StorageDriver for Completer {
    type Buffer = ARef<mq::Request<Ebd>>;
    type Protocol = EbdProtocol;

    fn complete(&self, rq: Self::Buffer, status: Result) {
        // The personality held the only reference, so ending succeeds.
        if mq::Request::end(rq, status).is_err() {
            pr_err!("a completed request is still referenced\n");
        }
    }

    fn queue_space(&self, _queue: u32, _free: u32) {
        // Nothing to do: a request refused for a full queue went back to
        // blk-mq, which reruns the hardware queue when one of its requests
        // completes, or a few milliseconds later if none is in flight (a
        // refusal because the session's sequence had no number to spare).
    }
}

/// What the request path of one disk needs.
pub(crate) struct DiskQueue {
    pub(crate) personality: Arc<Personality<Completer>>,
    pub(crate) read_only: bool,
}

/// The personality command for a block request; `EROFS` for a write to a
/// read-only disk, `EOPNOTSUPP` for operations EBD does not carry.
fn command_for(rq: &mq::Request<Ebd>, read_only: bool) -> Result<Command> {
    let op = match rq.op() {
        Op::Read => Operation::Read,
        Op::Write => Operation::Write,
        Op::Flush => Operation::Flush,
        Op::Discard => Operation::Discard,
        Op::WriteZeroes => Operation::WriteZeroes,
        Op::Other(_) => return Err(EOPNOTSUPP),
    };
    if read_only && op != Operation::Read && op != Operation::Flush {
        return Err(EROFS);
    }
    let (offset, length) = if op == Operation::Flush {
        (0, 0)
    } else {
        (rq.sector().checked_mul(512).ok_or(EINVAL)?, rq.bytes())
    };
    Ok(Command { op, offset, length, fua: rq.is_fua() })
}

fn end(rq: ARef<mq::Request<Ebd>>, status: Result) -> Result {
    // Only this reference exists; if ending failed anyway, blk-mq ends it
    // from the error returned.
    mq::Request::end(rq, status).map_err(|_| EIO)
}

#[vtable]
impl Operations for Ebd {
    type QueueData = Arc<DiskQueue>;

    fn queue_rq(q: ArcBorrow<'_, DiskQueue>, rq: ARef<mq::Request<Self>>, _is_last: bool) -> Result {
        let command = match command_for(&rq, q.read_only) {
            Ok(c) => c,
            Err(e) => return end(rq, Err(e)),
        };
        // Each blk-mq hardware queue is a queue of the personality, so CPUs
        // mapped to different hardware queues have a FIFO, window and lock
        // each.
        match q.personality.queue(rq.hw_queue(), rq.tag(), rq, command) {
            Ok(()) => Ok(()),
            // blk-mq keeps the request and dispatches it again later.
            Err(Refused::Full(rq)) => {
                drop(rq);
                Err(ENOMEM)
            }
            Err(Refused::Invalid(rq, e)) => end(rq, Err(e)),
        }
    }

    fn commit_rqs(_q: ArcBorrow<'_, DiskQueue>) {}

    fn complete(rq: ARef<mq::Request<Self>>) {
        let _ = end(rq, Ok(()));
    }

    fn timeout(q: ArcBorrow<'_, DiskQueue>, rq: &mq::TimedOut<Self>) -> TimeoutAction {
        match q.personality.expire(rq.hw_queue(), rq.tag(), |held| rq.is(held)) {
            TimerAction::Rearm(after) => {
                rq.set_timeout(after);
                TimeoutAction::ResetTimer
            }
            TimerAction::Stop => TimeoutAction::Done,
        }
    }
}
