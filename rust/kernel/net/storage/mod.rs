// SPDX-License-Identifier: GPL-2.0

//! The storage personality of a network interface.
//!
//! It gives an ordinary net device a second, storage-shaped interface next to
//! its traditional one, so that link-layer block drivers work in terms of
//! block requests instead of socket buffers: a driver queues a request
//! ([`Personality::queue`]: queued, queue full, or permanently refused), reads
//! the maximum and current queue length, is called back when queue space
//! frees up, and is called back when a request's responses have all arrived,
//! with a read's data already in the request's own pages.
//!
//! Underneath, the personality declusters each request into frames sized to
//! the device MTU ([`frames`]), keeps its own FIFO of requests and sends
//! frames only while the device's transmit queues run and the window of
//! outstanding responses has room, resuming when responses free the window
//! ([`ledger`]); it claims the frame type of its protocol's answers and
//! leaves every other frame type of the device to the stack.
//!
//! What is particular to one link-layer block protocol (the frame types, how
//! a request frame is written, how an answer is read and matched, how the
//! export is found) is a [`Protocol`]. EBD's ([`ebd`], over the wire format
//! of [`wire`]) is one; a driver for another protocol brings its own.
//!
//! Request ids are the driver's (a blk-mq tag fits); the driver owns each
//! request's response timer and calls [`Personality::expire`] when it fires,
//! which retransmits with backoff or fails the request after a bounded number
//! of retries. Well before that timer, once the server has fallen silent
//! for a retransmission timeout estimated from its answers ([`rtt`]), the
//! personality resends the requests that heard nothing for as long, from a
//! timer of its own that ticks while requests are held: a frame lost on the link costs a fraction of a second,
//! not the driver's timeout (which the block layer's queue freezes would
//! otherwise wait out with the whole disk stopped).
//!
//! A personality has one or more queues ([`Config::queues`]), meant one per
//! blk-mq hardware queue: each has its own FIFO, window of frames in flight,
//! retransmission timer and lock, so CPUs submitting on different queues
//! do not take turns for frames, windows or responses. They share one
//! session: request numbers and the finished window come from one
//! [`sequence`] (a short lock of its own, taken when a request is issued
//! or finished and once per transmit turn), and a frame's tag
//! carries its queue above [`QUEUE_SHIFT`], which a server may steer by so
//! that a queue's responses come back on one CPU.

pub mod disk;
pub mod ebd;
pub mod frames;
pub mod ledger;
mod personality;
pub mod protocol;
pub mod rtt;
pub mod sequence;
pub mod stats;
pub mod wire;

pub use ledger::Refused;
pub use protocol::{Command, Operation, Protocol};
pub use personality::{BlockBuffer, Config, Personality, StorageDriver, TimerAction, MAX_QUEUES, QUEUE_SHIFT};
