// SPDX-License-Identifier: GPL-2.0

//! Counters of a storage personality, readable while I/O runs.

use super::protocol::Malformed;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

macro_rules! counters {
    ($($(#[$meta:meta])* $name:ident,)*) => {
        /// Live counters, updated without locks.
        #[derive(Default)]
        pub struct Stats {
            $($(#[$meta])* pub $name: AtomicU64,)*
        }

        /// A copy of the counters at one moment.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct Snapshot {
            $($(#[$meta])* pub $name: u64,)*
        }

        impl Stats {
            /// Reads every counter.
            pub fn snapshot(&self) -> Snapshot {
                Snapshot { $($name: self.$name.load(Relaxed),)* }
            }
        }

        impl Snapshot {
            /// Adds every counter of `other` (the gauges are fixed up by
            /// [`Snapshot::combine`]).
            fn add(&mut self, other: &Snapshot) {
                $(self.$name = self.$name.wrapping_add(other.$name);)*
            }

            /// Each counter as `(name, value)`, in declaration order.
            pub fn fields(&self) -> [(&'static str, u64); counters!(@count $($name)*)] {
                [$((stringify!($name), self.$name),)*]
            }
        }
    };
    (@count) => { 0 };
    (@count $head:ident $($tail:ident)*) => { 1 + counters!(@count $($tail)*) };
}

counters! {
    /// Requests admitted.
    requests,
    /// Requests completed successfully.
    completed,
    /// Requests that ended with an error (server status, retries exhausted,
    /// detached).
    failed,
    /// Frames handed to the device.
    tx_frames,
    /// Frames that failed on transmit (device down, no memory to build
    /// them): the queue's timer resends them.
    tx_errors,
    /// Frames the device dropped on transmit (`NET_XMIT_DROP`: a full
    /// backlog or qdisc), taken back and sent again when it has room.
    tx_refused,
    /// Response frames received (before any check).
    rx_frames,
    /// Requests retransmitted after a timeout.
    retransmits,
    /// Requests resent early, after a retransmission timeout without any
    /// answer (the personality's own loss recovery).
    early_resends,
    /// The retransmission timeout now, in milliseconds (a gauge; over
    /// several queues, the longest).
    rto_ms,
    /// Requests that failed because every retry timed out.
    timeouts,
    /// Admissions refused because the queue was full.
    queue_full,
    /// Requests failed (or refused) because the device's MTU had dropped
    /// below the frame size planned at attach.
    failed_mtu,
    /// Most requests held at once (over several queues, by any one).
    queue_high_water,
    /// Dropped: shorter than a header.
    drop_short,
    /// Dropped: unknown protocol version.
    drop_version,
    /// Dropped: unknown opcode, flags or status, or a reserved field set.
    drop_field,
    /// Dropped: fragment or request range impossible, or offset beyond the
    /// request.
    drop_range,
    /// Dropped: payload length beyond the frame.
    drop_length,
    /// Dropped: not from the attached server, or for another export.
    drop_foreign,
    /// Dropped: for a request no longer outstanding (late response).
    drop_stale,
    /// Dropped: contradicts the request it names.
    drop_mismatch,
    /// Dropped: the frame was already answered.
    drop_duplicate,
    /// Dropped: a read's data could not be copied into its request (the
    /// frame was well formed; the request's timer asks for it again).
    drop_copy,
}

impl Snapshot {
    /// Folds in another queue's counters: counts add up; of the gauges,
    /// the retransmission timeout and the high-water mark are the largest
    /// any queue has.
    pub fn combine(&mut self, other: &Snapshot) {
        let rto_ms = self.rto_ms.max(other.rto_ms);
        let queue_high_water = self.queue_high_water.max(other.queue_high_water);
        self.add(other);
        self.rto_ms = rto_ms;
        self.queue_high_water = queue_high_water;
    }
}

impl Stats {
    /// Counts a frame the protocol refused as malformed.
    pub fn count_malformed(&self, e: Malformed) {
        let c = match e {
            Malformed::Short => &self.drop_short,
            Malformed::Version => &self.drop_version,
            Malformed::Field => &self.drop_field,
            Malformed::Range => &self.drop_range,
            Malformed::Length => &self.drop_length,
        };
        c.fetch_add(1, Relaxed);
    }

    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }
}
