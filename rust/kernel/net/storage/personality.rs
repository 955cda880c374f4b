// SPDX-License-Identifier: GPL-2.0

//! The storage personality bound to one net device: transmit pacing,
//! response delivery into block buffers, retransmission and teardown.

use super::{
    ledger::{Command, Expiry, FrameJob, Framing, Ledger, Limits, Matched, Refused, Unmatched},
    protocol::{Answer, InfoAnswer, Malformed, Parsed, Protocol, INFO_REQUEST_MAX},
    rtt::RttEstimator,
    sequence::Sequence,
    stats::{Snapshot, Stats},
};
use core::sync::atomic::{
    AtomicBool, AtomicU32, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use crate::{
    bindings,
    block::mq::{Operations, Request},
    net::{
        device::NetDevice,
        ethernet::{EthHdr, EtherType, MacAddr, HLEN},
        packet::{self, PacketHandler},
        skb::{SkBuff, Writable},
    },
    prelude::*,
    sync::{aref::ARef, Arc, ArcBorrow, Mutex, SpinLockBh},
    time::{
        delay::fsleep,
        hrtimer::{
            ArcHrTimerHandle, HasHrTimer, HrTimer, HrTimerCallback, HrTimerCallbackContext, HrTimerPointer,
            HrTimerRestart, RelativeSoftMode,
        },
        Delta, Instant, Monotonic,
    },
};

/// A frame's tag is its request's id (below [`Config::max_queue`]) with its
/// queue's index shifted above it by this many bits.
pub const QUEUE_SHIFT: u32 = 16;

/// Most queues one personality has.
pub const MAX_QUEUES: u32 = 64;

/// Frames built per turn of a queue's transmit loop before its lock is
/// dropped to hand them to the device.
const TX_BATCH: usize = 16;

/// How often a queue's timer looks for requests that have waited
/// longer than the retransmission timeout, while any request is held: a
/// lost frame is resent at most this long after it became overdue.
const TICK: Delta = Delta::from_millis(50);

/// Memory a response's data is placed into: the block request's own pages.
///
/// A clone is another reference to the same request, held while a read's
/// data is placed without its queue's lock; every clone is dropped
/// before the request is handed back to [`StorageDriver::complete`].
pub trait BlockBuffer: Clone + Send + 'static {
    /// Copies request bytes `[offset, offset + dst.len())` into `dst` (a
    /// frame being built, for writes).
    ///
    /// Context: under its queue's lock, with bottom halves off, from
    /// whichever caller sends queued frames: `queue_rq`, blk-mq's timeout
    /// work (process context), response receive or a queue's timer
    /// (softirq). Must not sleep.
    fn copy_out(&self, offset: u32, dst: &mut [u8]) -> Result;

    /// Copies `len` bytes of `skb` from `skb_offset` straight into the request
    /// at `offset` (a read's response): the only copy received data makes.
    ///
    /// Context: response receive (softirq), without any of the personality's locks,
    /// possibly on several CPUs at once for different parts of one request
    /// (never for the same bytes at once). Must not sleep.
    fn fill_from(&self, offset: u32, skb: &SkBuff, skb_offset: u32, len: u32) -> Result;
}

impl<T: Operations + 'static> BlockBuffer for ARef<Request<T>> {
    fn copy_out(&self, offset: u32, dst: &mut [u8]) -> Result {
        self.copy_from_request(offset, dst)
    }

    fn fill_from(&self, offset: u32, skb: &SkBuff, skb_offset: u32, len: u32) -> Result {
        self.copy_from_skb(offset, skb, skb_offset, len)
    }
}

/// A link-layer block driver using the personality.
pub trait StorageDriver: Send + Sync + 'static {
    /// Its requests.
    type Buffer: BlockBuffer;
    /// The protocol it speaks.
    type Protocol: Protocol;

    /// The response to `buffer` is complete (its data, for a read, is in
    /// place) or it failed.
    ///
    /// Context: never under any of the personality's locks; from response
    /// receive or a queue's timer (softirq), blk-mq's timeout work, `queue`
    /// (when the device's MTU has dropped below the frame size) or `detach`
    /// (process context, possibly under RTNL from a net device notifier).
    /// Must not sleep.
    fn complete(&self, buffer: Self::Buffer, status: Result);

    /// Room for `free` more requests on queue `queue` after a
    /// [`Refused::Full`] there.
    ///
    /// Context: response receive (softirq), never under the personality's
    /// lock. Must not sleep.
    fn queue_space(&self, _queue: u32, _free: u32) {}
}

/// How to attach.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// The server's address; `None` discovers it with a broadcast
    /// discovery request ([`Protocol::info_request`]) and binds to whoever
    /// answers first.
    pub server: Option<MacAddr>,
    /// Largest frame to send (header included), at most the device MTU; 0
    /// means the MTU.
    pub frame_size: u32,
    /// Most requests each queue holds at once; request ids run below it
    /// (and below `1 << QUEUE_SHIFT`).
    pub max_queue: u32,
    /// Most frames each queue has awaiting an answer at once (see
    /// [`Limits::window`]).
    pub window: u32,
    /// Queues, each with its own FIFO, window, timer and lock (1 to
    /// [`MAX_QUEUES`]).
    pub queues: u32,
    /// Retransmissions before a request fails with `EIO`.
    pub max_retries: u32,
    /// First response timeout; doubled per retry, up to
    /// `1 << ledger::MAX_BACKOFF_SHIFT` times.
    pub timeout: Delta,
}

/// What the owner of a request's timer should do after [`Personality::expire`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerAction {
    /// Arm the timer again for this long.
    Rearm(Delta),
    /// The request was ended (or is no longer the personality's).
    Stop,
}

/// What every queue shares: the driver, the protocol, the session, the
/// server and the answer to the discovery.
#[pin_data]
struct Core<D: StorageDriver> {
    driver: D,
    /// What names the export on the wire, and how frames look.
    protocol: D::Protocol,
    /// Frames refused before a queue is known (malformed, foreign, for no
    /// queue) and the discovery's own frames.
    stats: Stats,
    local: MacAddr,
    /// Data bytes per frame: planned at attach, perhaps narrowed once
    /// after discovery ([`Personality::narrow`]).
    payload: AtomicU32,
    timeout: Delta,
    /// The device's MTU is below the frame size planned at attach (logged
    /// once per drop); requests fail with `EMSGSIZE` until it is raised.
    mtu_short: AtomicBool,
    /// The server's address in the low 48 bits with bit 48 set once it is
    /// known; set once (configured, or the first to answer discovery) and
    /// never changed, so the data path reads it without a lock.
    server: AtomicU64,
    /// The request numbers and finished window of the session.
    sequence: Arc<Sequence>,
    #[pin]
    link: SpinLockBh<Link<<D::Protocol as Protocol>::Info>>,
}

/// The discovery's state.
struct Link<I> {
    info: Option<I>,
    /// The server's refusal of the discovery, if it refused (when
    /// discovering: the last refusal heard).
    info_refused: Option<Error>,
    /// No server was configured: the first one to accept is bound, and a
    /// refusal does not end the search (another server may have the
    /// export).
    discovering: bool,
    /// A step of a discovery of several exchanges was answered since the
    /// last request: the next one goes out without waiting.
    progressed: bool,
}

impl<I: Copy> Link<I> {
    /// The server's answer to the discovery, once it is final: an
    /// acceptance, or a configured server's refusal.
    fn info_answer(&self) -> Option<Result<I>> {
        match (self.info, self.info_refused) {
            (Some(info), _) => Some(Ok(info)),
            (None, Some(err)) if !self.discovering => Some(Err(err)),
            _ => None,
        }
    }
}

const SERVER_KNOWN: u64 = 1 << 48;

fn pack_mac(m: MacAddr) -> u64 {
    let b = m.as_bytes();
    SERVER_KNOWN | b.iter().fold(0u64, |v, &x| (v << 8) | u64::from(x))
}

impl<D: StorageDriver> Core<D> {
    /// The server bound to, once known.
    fn server(&self) -> Option<MacAddr> {
        let v = self.server.load(Acquire);
        if v & SERVER_KNOWN == 0 {
            return None;
        }
        let b = v.to_be_bytes();
        Some(MacAddr::new([b[2], b[3], b[4], b[5], b[6], b[7]]))
    }
}

/// One queue's state, under its lock.
struct QueueState<B> {
    ledger: Ledger<B>,
    /// `None` once detached.
    dev: Option<ARef<NetDevice>>,
    /// A transmit loop is running; others leave their frames to it.
    draining: bool,
    /// How long the server takes to answer this queue's requests.
    rtt: RttEstimator,
    /// The timer ([`Queue::ticker`]) is queued or running and will look at
    /// the ledger again; cleared by the tick that finds it empty or the
    /// queue detached.
    ticking: bool,
}

/// One queue of the personality: its own requests, window, timer and lock.
#[pin_data]
struct Queue<D: StorageDriver> {
    core: Arc<Core<D>>,
    /// Its index, the tag bits above [`QUEUE_SHIFT`].
    index: u32,
    #[pin]
    inner: SpinLockBh<QueueState<D::Buffer>>,
    stats: Stats,
    /// Resends requests that heard nothing for a retransmission timeout
    /// ([`Queue::tick`]), while any is held.
    #[pin]
    ticker: HrTimer<Queue<D>>,
}

crate::impl_has_hr_timer! {
    impl{D: StorageDriver} HasHrTimer<Queue<D>> for Queue<D> {
        mode: RelativeSoftMode<Monotonic>,
        field: self.ticker,
    }
}

impl<D: StorageDriver> HrTimerCallback for Queue<D> {
    type Pointer<'a> = Arc<Queue<D>>;

    fn run(this: ArcBorrow<'_, Self>, mut ctx: HrTimerCallbackContext<'_, Self>) -> HrTimerRestart {
        if this.tick() {
            ctx.forward_now(TICK);
            HrTimerRestart::Restart
        } else {
            HrTimerRestart::NoRestart
        }
    }
}

// Locking: a queue's `inner` is taken from process context (`queue`,
// blk-mq's timeout work, `detach`) and from softirq (response receive, the
// tick of a soft hrtimer), never from a hard interrupt handler, so it is a
// bottom-half spinlock: held, it keeps receive off this CPU while
// interrupts stay on, which is what building frames (GFP_ATOMIC
// allocation, data copies) and freeing a frame whose build failed need.
// The sequence's lock and the core's `link` are taken inside it or alone;
// no two queues' locks are ever held at once. The driver's callbacks run
// without any of them.

/// Receives the personality's response frames on its device.
struct Receiver<D: StorageDriver> {
    core: Arc<Core<D>>,
    queues: KVec<Arc<Queue<D>>>,
}

impl<D: StorageDriver> PacketHandler for Receiver<D> {
    fn receive(&self, skb: SkBuff, _dev: &NetDevice) {
        self.dispatch(skb);
    }
}

/// The storage personality of one net device, for one driver instance.
///
/// Requests are queued with [`Personality::queue`] on one of its queues,
/// sent in order while the device and that queue's response window have
/// room, and handed back through [`StorageDriver::complete`] when every
/// response has arrived. Frames of the protocol's request type go out;
/// frames of its response type from the server come in; the device's
/// other traffic is untouched.
///
/// # Invariants
///
/// `queues` has between 1 and [`MAX_QUEUES`] queues, queue `i` at index
/// `i`. While `receiver` holds a registration, every queue's `dev` is
/// `Some`; after [`Personality::detach`] both are gone and every ledger is
/// empty. `tickers` holds the handle of each queue's timer (with a
/// reference to the queue) from attach until [`Personality::detach`] has
/// cleared every queue's `dev`; a queue's timer is started again only
/// under that queue's lock while its `dev` is `Some`, or re-armed by its
/// own tick (which dropping the handle cancels as well, with
/// `hrtimer_cancel`), so it never runs after its handle is dropped.
#[pin_data(PinnedDrop)]
pub struct Personality<D: StorageDriver> {
    core: Arc<Core<D>>,
    queues: KVec<Arc<Queue<D>>>,
    #[pin]
    receiver: Mutex<Option<Pin<KBox<packet::Registration<Receiver<D>>>>>>,
    #[pin]
    tickers: Mutex<KVec<ArcHrTimerHandle<Queue<D>>>>,
}

/// Milliseconds on the monotonic clock, the ledger's time base.
fn now_ms() -> u64 {
    // Monotonic time is never negative.
    (Instant::<Monotonic>::now().as_nanos() / 1_000_000).unsigned_abs()
}

/// A clone of every queue's reference.
fn clone_queues<D: StorageDriver>(queues: &[Arc<Queue<D>>]) -> Result<KVec<Arc<Queue<D>>>> {
    let mut out = KVec::with_capacity(queues.len(), GFP_KERNEL)?;
    for q in queues {
        out.push(q.clone(), GFP_KERNEL)?;
    }
    Ok(out)
}

impl<D: StorageDriver> Personality<D> {
    /// Attaches to `dev` to speak `protocol` and starts receiving
    /// responses. Process context.
    ///
    /// `EINVAL` if the device has no unicast address or its MTU (or
    /// `frame_size`) cannot carry one sector per frame, or for a number of
    /// queues or a queue length out of range.
    pub fn attach(dev: ARef<NetDevice>, driver: D, protocol: D::Protocol, config: Config) -> Result<Arc<Self>> {
        let local = dev.mac_addr().filter(|m| m.is_valid_unicast()).ok_or(EINVAL)?;
        let frame = match config.frame_size {
            0 => dev.mtu(),
            n => n.min(dev.mtu()),
        };
        let payload = D::Protocol::payload_per_frame(frame).ok_or(EINVAL)?;
        if !(1..=MAX_QUEUES).contains(&config.queues) || config.max_queue > 1 << QUEUE_SHIFT {
            return Err(EINVAL);
        }
        // SAFETY: `get_random_u32` has no precondition.
        let first_seq = unsafe { bindings::get_random_u32() };
        let held = config.max_queue.checked_mul(config.queues).ok_or(EINVAL)?;
        let sequence = Sequence::new(first_seq, held)?;
        let session_sequence = sequence.clone();
        let core = Arc::pin_init(
            pin_init!(Core {
                driver,
                protocol,
                stats: Stats::default(),
                local,
                payload: AtomicU32::new(payload),
                timeout: config.timeout,
                mtu_short: AtomicBool::new(false),
                server: AtomicU64::new(config.server.map_or(0, pack_mac)),
                sequence: session_sequence,
                link <- {
                    let (name, key) = crate::sync::generic_lock_class!("net::storage::Core::link");
                    let link = Link {
                        info: None,
                        info_refused: None,
                        discovering: config.server.is_none(),
                        progressed: false,
                    };
                    SpinLockBh::new(link, name, key)
                },
            }),
            GFP_KERNEL,
        )?;
        let framing = Framing {
            max_request: D::Protocol::MAX_REQUEST,
            reads_per_fragment: D::Protocol::READS_PER_FRAGMENT,
            span_bound: D::Protocol::SPAN_BOUND,
            acks_runs: D::Protocol::ACKS_RUNS,
        };
        let limits = Limits {
            max_queue: config.max_queue,
            payload,
            window: config.window,
            max_retries: config.max_retries,
            framing,
        };
        let mut queues = KVec::with_capacity(config.queues as usize, GFP_KERNEL)?;
        for index in 0..config.queues {
            let ledger = Ledger::sharing(limits, sequence.clone())?;
            let held = dev.clone();
            let shared = core.clone();
            let queue = Arc::pin_init(
                pin_init!(Queue {
                    core: shared,
                    index,
                    inner <- {
                        let (name, key) = crate::sync::generic_lock_class!("net::storage::Queue::inner");
                        let state = QueueState {
                            ledger,
                            dev: Some(held),
                            draining: false,
                            rtt: RttEstimator::new(),
                            // Started below, once attached.
                            ticking: true,
                        };
                        SpinLockBh::new(state, name, key)
                    },
                    stats: Stats::default(),
                    ticker <- HrTimer::new(),
                }),
                GFP_KERNEL,
            )?;
            queues.push(queue, GFP_KERNEL)?;
        }
        let receiver = KBox::pin_init(
            packet::Registration::new(
                EtherType(D::Protocol::RESPONSE_TYPE),
                Some(dev),
                Receiver { core: core.clone(), queues: clone_queues(&queues)? },
            ),
            GFP_KERNEL,
        )?;
        // The first tick finds the ledger empty and lets the timer rest
        // until a request is queued.
        let mut tickers = KVec::with_capacity(queues.len(), GFP_KERNEL)?;
        for q in queues.iter() {
            tickers.push(q.clone().start(TICK), GFP_KERNEL)?;
        }
        Arc::pin_init(
            pin_init!(Personality {
                core,
                queues,
                receiver <- {
                    let (name, key) = crate::sync::generic_lock_class!("net::storage::Personality::receiver");
                    Mutex::new(Some(receiver), name, key)
                },
                tickers <- {
                    let (name, key) = crate::sync::generic_lock_class!("net::storage::Personality::tickers");
                    Mutex::new(tickers, name, key)
                },
            }),
            GFP_KERNEL,
        )
    }

    /// The driver given to [`Personality::attach`].
    pub fn driver(&self) -> &D {
        &self.core.driver
    }

    /// The protocol given to [`Personality::attach`].
    pub fn protocol(&self) -> &D::Protocol {
        &self.core.protocol
    }

    /// Payload bytes per frame: the declustering unit.
    pub fn payload_per_frame(&self) -> u32 {
        self.core.payload.load(Relaxed)
    }

    /// Narrows the data each frame carries to `payload` bytes and each
    /// queue's window to `window` frames: what the server said it accepts,
    /// learnt at discovery ([`Personality::query_info`]). Only before any
    /// request is queued (`EBUSY`); neither may grow nor be zero
    /// (`EINVAL`). Process context.
    pub fn narrow(&self, payload: u32, window: u32) -> Result {
        // Every queue is looked at before any is changed, so that a refusal
        // leaves them all as they were (a request queued between the two
        // passes, against the rule above, is refused by its own queue).
        if self.queues.iter().any(|q| !q.inner.lock().ledger.is_empty()) {
            return Err(EBUSY);
        }
        for q in self.queues.iter() {
            q.inner.lock().ledger.narrow(payload, window)?;
        }
        self.core.payload.store(payload, Relaxed);
        Ok(())
    }

    /// Number of queues.
    pub fn queues(&self) -> u32 {
        // At most `MAX_QUEUES` (invariant).
        self.queues.len() as u32
    }

    /// Bytes the personality pins for as long as it is attached: its own
    /// state, every queue's and the ledgers' slots. Frames in flight come
    /// on top, bounded by [`Personality::window_bytes`].
    pub fn pinned_bytes(&self) -> usize {
        let queues: usize = self
            .queues
            .iter()
            .map(|q| core::mem::size_of::<Queue<D>>() + q.inner.lock().ledger.memory_bytes())
            .sum();
        core::mem::size_of::<Core<D>>() + core::mem::size_of::<Self>() + queues
    }

    /// Most bytes of frames the windows let be outstanding at once (payload
    /// of every response frame they admit, over all queues).
    pub fn window_bytes(&self) -> usize {
        self.queues
            .iter()
            .map(|q| {
                let limits = q.inner.lock().ledger.limits();
                limits.window as usize * limits.payload as usize
            })
            .sum()
    }

    /// Maximum queue length (requests one queue holds at once).
    pub fn max_queue_len(&self) -> u32 {
        self.queues.first().map_or(0, |q| q.inner.lock().ledger.limits().max_queue)
    }

    /// Current queue length, over all queues.
    pub fn queue_len(&self) -> u32 {
        self.queues.iter().map(|q| q.inner.lock().ledger.len()).sum()
    }

    /// The server bound to, once known.
    pub fn server(&self) -> Option<MacAddr> {
        self.core.server()
    }

    /// Whether [`Personality::detach`] has run (or the device went away).
    pub fn is_detached(&self) -> bool {
        self.queues.iter().all(|q| q.inner.lock().dev.is_none())
    }

    /// The counters now, over every queue.
    pub fn stats(&self) -> Snapshot {
        let mut total = self.core.stats.snapshot();
        for q in self.queues.iter() {
            total.combine(&q.stats.snapshot());
        }
        total
    }

    /// Queue `queue`'s counters and length now.
    pub fn queue_stats(&self, queue: u32) -> Option<(Snapshot, u32)> {
        let q = self.queues.get(queue as usize)?;
        Some((q.stats.snapshot(), q.inner.lock().ledger.len()))
    }

    /// Writes the counters and queue state as `name value` lines (what a
    /// driver's `stats` attribute shows).
    pub fn report(&self, w: &mut impl core::fmt::Write) -> core::fmt::Result {
        for (name, value) in self.stats().fields() {
            w.write_fmt(format_args!("{} {}\n", name, value))?;
        }
        w.write_fmt(format_args!("queue_len {}\n", self.queue_len()))?;
        w.write_fmt(format_args!("queue_max {}\n", self.max_queue_len()))?;
        w.write_fmt(format_args!("payload_per_frame {}\n", self.payload_per_frame()))?;
        w.write_fmt(format_args!("pinned_bytes {}\n", self.pinned_bytes()))?;
        w.write_fmt(format_args!("window_bytes {}\n", self.window_bytes()))?;
        w.write_fmt(format_args!("queues {}\n", self.queues()))?;
        w.write_fmt(format_args!("detached {}\n", u8::from(self.is_detached())))
    }

    /// Writes one line per queue: `queue N` and the counters that tell how
    /// the queue fares as `name=value` pairs, then its length.
    pub fn report_queues(&self, w: &mut impl core::fmt::Write) -> core::fmt::Result {
        for q in 0..self.queues() {
            let Some((s, len)) = self.queue_stats(q) else { continue };
            w.write_fmt(format_args!(
                "queue {} requests={} completed={} failed={} tx_frames={} retransmits={} early_resends={} \
                 timeouts={} queue_full={} queue_high_water={} rto_ms={} drop_stale={} drop_duplicate={} \
                 queue_len={}\n",
                q,
                s.requests,
                s.completed,
                s.failed,
                s.tx_frames,
                s.retransmits,
                s.early_resends,
                s.timeouts,
                s.queue_full,
                s.queue_high_water,
                s.rto_ms,
                s.drop_stale,
                s.drop_duplicate,
                len
            ))?;
        }
        Ok(())
    }

    /// Queues `buffer`'s request under `id` on queue `queue` (below the
    /// maximum queue length, unused by any other request held there). Any
    /// context that may transmit (interrupts enabled, not in hard
    /// interrupt).
    ///
    /// On [`Refused::Full`] the caller keeps the request and may try again
    /// after [`StorageDriver::queue_space`]; [`Refused::Invalid`] is
    /// permanent for this request.
    pub fn queue(&self, queue: u32, id: u32, buffer: D::Buffer, command: Command) -> Result<(), Refused<D::Buffer>> {
        let Some(q) = self.queues.get(queue as usize) else {
            return Err(Refused::Invalid(buffer, EINVAL));
        };
        let core = &*self.core;
        if !core.protocol.carries(command.op) {
            return Err(Refused::Invalid(buffer, EOPNOTSUPP));
        }
        {
            let mut g = q.inner.lock();
            let fits = match &g.dev {
                Some(dev) if core.server().is_some() => core.frames_fit(dev),
                _ => return Err(Refused::Invalid(buffer, ENODEV)),
            };
            if !fits {
                Stats::bump(&q.stats.failed_mtu);
                return Err(Refused::Invalid(buffer, EMSGSIZE));
            }
            if let Err(refused) = g.ledger.admit(id, buffer, command) {
                if matches!(refused, Refused::Full(_)) {
                    Stats::bump(&q.stats.queue_full);
                }
                return Err(refused);
            }
            Stats::bump(&q.stats.requests);
            q.stats.queue_high_water.fetch_max(u64::from(g.ledger.high_water()), Relaxed);
            if !g.ticking {
                g.ticking = true;
                // SAFETY: The queue's `inner` is held with `dev` set, so the
                // queue outlives the timer (invariant).
                unsafe { <Queue<D> as HasHrTimer<Queue<D>>>::start(&**q, TICK) };
            }
        }
        q.drain();
        Ok(())
    }

    /// The response timer of request `id` on queue `queue` expired; `is_it`
    /// confirms the held request is the one whose timer fired. Retransmits
    /// what is unanswered with a doubled timeout, or ends the request with
    /// `EIO` once [`Config::max_retries`] are spent; while an answer's data
    /// is being placed into the request, it does neither and asks to be
    /// called again in a millisecond. Process or softirq context.
    pub fn expire(&self, queue: u32, id: u32, is_it: impl FnOnce(&D::Buffer) -> bool) -> TimerAction {
        let Some(q) = self.queues.get(queue as usize) else {
            return TimerAction::Stop;
        };
        let core = &*self.core;
        let base_ms = core.timeout.as_millis().max(1).unsigned_abs();
        let verdict = q.inner.lock().ledger.expire(id, now_ms(), base_ms, is_it);
        let rearm = |ms: u64| TimerAction::Rearm(Delta::from_millis(i64::try_from(ms).unwrap_or(i64::MAX)));
        match verdict {
            Expiry::NotFound => TimerAction::Stop,
            Expiry::NotYet(wait_ms) => {
                q.drain();
                rearm(wait_ms)
            }
            Expiry::Retry { wait_ms, .. } => {
                Stats::bump(&q.stats.retransmits);
                q.drain();
                rearm(wait_ms)
            }
            Expiry::GiveUp(buffer) => {
                Stats::bump(&q.stats.timeouts);
                Stats::bump(&q.stats.failed);
                core.driver.complete(buffer, Err(EIO));
                wake_waiting(&self.queues, &core.sequence);
                TimerAction::Stop
            }
        }
    }

    /// Asks the server for the export's geometry, binding to the server
    /// that answers when discovering. Sends up to `attempts` requests,
    /// `interval` apart; a step of a discovery of several exchanges that is
    /// answered has the next request sent at once. Process context
    /// (sleeps).
    ///
    /// A configured server's refusal ends the query with its error at once.
    /// When discovering, refusals do not: the first server that accepts is
    /// bound, and only if none does by the last attempt is the query failed
    /// with the last refusal's error (or `ETIMEDOUT` if nobody answered).
    pub fn query_info(&self, attempts: u32, interval: Delta) -> Result<<D::Protocol as Protocol>::Info> {
        let core = &*self.core;
        for attempt in 0..attempts {
            if let Some(answer) = core.link.lock().info_answer() {
                return answer;
            }
            core.link.lock().progressed = false;
            let dev = self.queues.first().and_then(|q| q.inner.lock().dev.clone()).ok_or(ENODEV)?;
            let dst = core.server().unwrap_or(MacAddr::BROADCAST);
            let mut request = [0u8; INFO_REQUEST_MAX];
            let sent = core
                .protocol
                .info_request(attempt, core.sequence.window(), &mut request)
                .and_then(|len| {
                    let header = request.get(..len).ok_or(EINVAL)?;
                    let write_header = |out: &mut [u8]| {
                        out.copy_from_slice(header);
                        Ok(())
                    };
                    core.build_frame(&dev, dst, len, write_header, None, GFP_KERNEL)
                })
                .and_then(|skb| skb.transmit(&dev));
            match sent {
                Ok(_) => Stats::bump(&core.stats.tx_frames),
                Err(_) => Stats::bump(&core.stats.tx_errors),
            }
            drop(dev);
            let step = Delta::from_millis(10);
            let mut waited = 0;
            while waited < interval.as_millis() {
                fsleep(step);
                waited += 10;
                let g = core.link.lock();
                if let Some(answer) = g.info_answer() {
                    return answer;
                }
                if g.progressed {
                    break;
                }
            }
        }
        let g = core.link.lock();
        Err(g.info_refused.unwrap_or(ETIMEDOUT))
    }

    /// Stops receiving, drops the device and ends every held request with
    /// `EIO`. Later [`Personality::queue`] calls are refused with `ENODEV`.
    /// Process context (waits for running receive handlers). Idempotent.
    pub fn detach(&self) {
        let registration = self.receiver.lock().take();
        // Unregistering waits until no handler runs any more.
        drop(registration);
        for q in self.queues.iter() {
            let dev = q.inner.lock().dev.take();
            drop(dev);
        }
        // No tick starts a timer again now that every `dev` is gone;
        // dropping the handles cancels them and waits for ticks that run.
        let tickers = core::mem::replace(&mut *self.tickers.lock(), KVec::new());
        drop(tickers);
        for q in self.queues.iter() {
            q.fail_held(EIO, None);
        }
    }
}

#[pinned_drop]
impl<D: StorageDriver> PinnedDrop for Personality<D> {
    fn drop(self: Pin<&mut Self>) {
        self.detach();
    }
}

impl<D: StorageDriver> Core<D> {
    /// Builds one request frame to `dst`: `write_header` writes the
    /// protocol's `header_len` bytes of header straight into the frame, and
    /// a write's data is copied once from the request into the frame.
    fn build_frame(
        &self,
        dev: &NetDevice,
        dst: MacAddr,
        header_len: usize,
        write_header: impl FnOnce(&mut [u8]) -> Result,
        data: Option<(&D::Buffer, u32, u32)>,
        flags: crate::alloc::Flags,
    ) -> Result<SkBuff<Writable>> {
        let data_len = data.map_or(0, |(_, _, len)| len);
        let at = HLEN + header_len;
        let total = u32::try_from(at).map_err(|_| EINVAL)? + data_len;
        let mut skb = SkBuff::alloc_for(dev, total, flags)?;
        let frame = skb.put(total)?;
        let ethertype = EtherType(D::Protocol::REQUEST_TYPE);
        EthHdr { dst, src: self.local, ethertype }.write(frame)?;
        write_header(frame.get_mut(HLEN..at).ok_or(EINVAL)?)?;
        if let Some((buffer, offset, len)) = data {
            buffer.copy_out(offset, frame.get_mut(at..at + len as usize).ok_or(EINVAL)?)?;
        }
        skb.set_protocol(ethertype);
        Ok(skb)
    }

    /// Whether the device's MTU still carries the frames planned at attach.
    /// Logs when that changes: a link whose MTU drops below the frame size
    /// would drop every data frame, so requests fail at once instead of
    /// timing out one by one, and work again once the MTU is raised.
    fn frames_fit(&self, dev: &NetDevice) -> bool {
        let mtu = dev.mtu();
        let frame = D::Protocol::REQUEST_HEADER_LEN + self.payload.load(Relaxed);
        let fits = frame <= mtu;
        // Whichever queue sees the change first logs it.
        if self.mtu_short.swap(!fits, Relaxed) == fits {
            if fits {
                pr_info!("storage: {}: MTU {} carries {}-byte frames again\n", dev.name(), mtu, frame);
            } else {
                pr_warn!(
                    "storage: {}: MTU {} is below the {}-byte frames this disk attached with; \
                     requests fail with EMSGSIZE until it is raised\n",
                    dev.name(),
                    mtu,
                    frame
                );
            }
        }
        fits
    }

    /// An answer to the discovery from `source`. Returns whether it was
    /// taken (an answer from the server, or the first one when
    /// discovering); what is refused is counted.
    fn receive_info(&self, answer: InfoAnswer<<D::Protocol as Protocol>::Info>, source: MacAddr) -> bool {
        let mut g = self.link.lock();
        let bound = self.server();
        if let InfoAnswer::Refused(err) = answer {
            if !matches!(bound, Some(s) if s != source) {
                g.info_refused = Some(err);
                return true;
            }
            Stats::bump(&self.stats.drop_foreign);
            return false;
        }
        match bound {
            Some(s) if s == source => {}
            None if source.is_valid_unicast() => {
                // Bound once, under `link`: queues read it from now on.
                self.server.store(pack_mac(source), Release);
            }
            _ => {
                Stats::bump(&self.stats.drop_foreign);
                return false;
            }
        }
        match answer {
            InfoAnswer::Accepted(info) => g.info = Some(info),
            InfoAnswer::Progress(step) => {
                self.protocol.progress(&step);
                g.progressed = true;
            }
            InfoAnswer::Refused(_) => {}
        }
        true
    }
}

impl<D: StorageDriver> Receiver<D> {
    /// A response frame arrived: have the protocol validate it, then hand
    /// it to the discovery or to the queue its tag names.
    fn dispatch(&self, skb: SkBuff) {
        let core = &*self.core;
        Stats::bump(&core.stats.rx_frames);
        let parsed = core.protocol.parse(&skb);
        // Only frames addressed to this host (not ones seen in promiscuous
        // mode) and for this attachment.
        let source = skb.eth_hdr().map(|e| e.src).filter(|_| skb.is_to_host());
        let answer = match (parsed, source) {
            (Parsed::Malformed(why), _) => {
                core.stats.count_malformed(why);
                return;
            }
            (Parsed::Mismatch, Some(_)) => {
                Stats::bump(&core.stats.drop_mismatch);
                return;
            }
            (Parsed::Foreign, _) | (_, None) => {
                Stats::bump(&core.stats.drop_foreign);
                return;
            }
            (Parsed::Info(info), Some(source)) => {
                if core.receive_info(info, source) {
                    skb.consume();
                }
                return;
            }
            (Parsed::Answer(answer), Some(source)) => {
                if core.server() != Some(source) {
                    Stats::bump(&core.stats.drop_foreign);
                    return;
                }
                answer
            }
        };
        let Some(queue) = self.queues.get((answer.tag >> QUEUE_SHIFT) as usize) else {
            Stats::bump(&core.stats.drop_stale);
            return;
        };
        let answer = Answer { tag: answer.tag & ((1 << QUEUE_SHIFT) - 1), ..answer };
        queue.receive(&answer, skb);
        wake_waiting(&self.queues, &core.sequence);
    }
}

/// Sends what queues waiting for an older request can send now that a
/// request may have finished (see [`Sequence::wait`]); a queue still held
/// back asks again.
fn wake_waiting<D: StorageDriver>(queues: &[Arc<Queue<D>>], sequence: &Sequence) {
    let mut waiting = sequence.take_waiting();
    while waiting != 0 {
        let i = waiting.trailing_zeros();
        waiting &= waiting - 1;
        if let Some(q) = queues.get(i as usize) {
            q.drain();
        }
    }
}

impl<D: StorageDriver> Queue<D> {
    /// One tick of the timer: resends requests that heard nothing for the
    /// retransmission timeout and sends what waits. Returns whether to tick
    /// again (requests are still held). Softirq context.
    fn tick(&self) -> bool {
        let now = now_ms();
        let (resent, queued) = {
            let mut g = self.inner.lock();
            if g.dev.is_none() || g.ledger.is_empty() {
                g.ticking = false;
                return false;
            }
            // Never as long as half the driver's timeout: the early resend
            // comes first.
            let rto = g.rtt.rto_ms(self.core.timeout.as_millis().unsigned_abs() / 2);
            self.stats.rto_ms.store(rto, Relaxed);
            let resent = g.ledger.resend_overdue(now, rto);
            if resent > 0 {
                g.rtt.back_off();
            }
            (resent, g.ledger.has_queued())
        };
        self.stats.early_resends.fetch_add(u64::from(resent), Relaxed);
        // Also what a full window or a stopped device left queued, or
        // frames waiting for another queue's oldest request to finish,
        // should nothing else come to send them.
        if queued {
            self.drain();
        }
        true
    }

    /// Ends every held request with `err`, oldest first (see
    /// [`Ledger::take_oldest`]), a batch per hold of the lock; the driver's
    /// completions run without it. Counts each in `failed` and in `also`,
    /// but for one whose data another CPU is placing right now: that CPU
    /// ends it, with `err`, when its copy is done (counted in `failed`
    /// only), and this waits for it before taking newer ones (a copy of
    /// one frame, without the lock). Detaching never waits so: it stops
    /// the receive handlers first.
    fn fail_held(&self, err: Error, also: Option<&AtomicU64>) {
        loop {
            let mut batch: [Option<D::Buffer>; TX_BATCH] = core::array::from_fn(|_| None);
            let empty;
            {
                let mut g = self.inner.lock();
                for slot in batch.iter_mut() {
                    *slot = g.ledger.take_oldest(err);
                }
                empty = g.ledger.is_empty();
            }
            if batch[0].is_none() {
                if empty {
                    return;
                }
                core::hint::spin_loop();
                continue;
            }
            for buffer in batch.into_iter().flatten() {
                Stats::bump(&self.stats.failed);
                if let Some(counter) = also {
                    Stats::bump(counter);
                }
                self.core.driver.complete(buffer, Err(err));
            }
        }
    }

    fn device_busy(dev: &NetDevice) -> bool {
        (0..dev.num_tx_queues()).any(|q| dev.tx_queue_stopped(q).unwrap_or(false))
    }

    /// Sends queued frames, in order, while the device's transmit queues
    /// run and the window has room. One caller drains a queue at a time;
    /// frames queued meanwhile are picked up by its next turn. Frames are
    /// built under the lock and handed to the device without it.
    fn drain(&self) {
        let core = &*self.core;
        let mut g = self.inner.lock();
        if g.draining {
            return;
        }
        let mut waiting = false;
        loop {
            let (Some(dev), Some(server)) = (g.dev.clone(), core.server()) else {
                g.draining = false;
                return;
            };
            if !core.frames_fit(&dev) {
                if g.ledger.len() == 0 {
                    g.draining = false;
                    return;
                }
                g.draining = true;
                drop(g);
                drop(dev);
                self.fail_held(EMSGSIZE, Some(&self.stats.failed_mtu));
                g = self.inner.lock();
                continue;
            }
            // What the other queues finished since this one last looked.
            g.ledger.refresh_window();
            let mut batch: [Option<SkBuff<Writable>>; TX_BATCH] = core::array::from_fn(|_| None);
            // What each frame of `batch` is, to take back those not sent.
            let mut jobs: [Option<FrameJob>; TX_BATCH] = [None; TX_BATCH];
            let mut n = 0;
            while n < TX_BATCH && !Self::device_busy(&dev) {
                let Some(mut job) = g.ledger.next_frame(now_ms()) else {
                    break;
                };
                job.frame.tag |= self.index << QUEUE_SHIFT;
                let data = match job.data {
                    Some((offset, len)) => match g.ledger.request(job.id) {
                        Some(buffer) => Some((buffer, offset, len)),
                        None => continue,
                    },
                    None => None,
                };
                let header_len = D::Protocol::REQUEST_HEADER_LEN as usize;
                let write_header = |out: &mut [u8]| core.protocol.encode_request(&job.frame, out);
                match core.build_frame(&dev, server, header_len, write_header, data, GFP_ATOMIC) {
                    Ok(skb) => {
                        batch[n] = Some(skb);
                        jobs[n] = Some(job);
                        n += 1;
                    }
                    // Counted as lost; the queue's timer resends it.
                    Err(_) => Stats::bump(&self.stats.tx_errors),
                }
            }
            if n == 0 {
                // Frames wait for an older request, perhaps another
                // queue's, to finish: ask to be woken when one does, then
                // look once more in case one did meanwhile.
                if g.ledger.held_back() && !waiting {
                    waiting = true;
                    core.sequence.wait(self.index);
                    continue;
                }
                g.draining = false;
                return;
            }
            // Progress: if frames are held back again later in this call,
            // the queue asks to be woken again (a wake-up taken meanwhile
            // found this loop running and left the frames to it).
            waiting = false;
            g.draining = true;
            drop(g);
            // The first frame the device refuses: it and those after it,
            // not offered (dropped with the array), are taken back.
            let mut refused_from = None;
            for (i, skb) in batch.iter_mut().enumerate() {
                let Some(skb) = skb.take() else { break };
                match skb.transmit(&dev) {
                    Ok(_) => Stats::bump(&self.stats.tx_frames),
                    Err(e) if e == ENOBUFS => {
                        Stats::bump(&self.stats.tx_refused);
                        refused_from = Some(i);
                        break;
                    }
                    // Counted as lost; the queue's timer resends it.
                    Err(_) => Stats::bump(&self.stats.tx_errors),
                }
            }
            drop(batch);
            drop(dev);
            g = self.inner.lock();
            if let Some(first) = refused_from {
                let now = now_ms();
                // Newest first, so that they go out again in order.
                for job in jobs[first..n].iter().rev().flatten() {
                    if !g.ledger.unsend(job, now) {
                        // Refused too long: lost, for the timers to resend.
                        Stats::bump(&self.stats.tx_errors);
                    }
                }
                // The device is full: what answers free, or the next tick,
                // sends them again (sending now would only be refused).
                g.draining = false;
                return;
            }
        }
    }

    /// An answer for this queue (`answer.tag` is the request id): match
    /// it, place a read's data, complete what is complete, then send what
    /// the freed window allows.
    fn receive(&self, answer: &Answer, skb: SkBuff) {
        let mut done;
        let mut space;
        let mut queued;
        // A read's data is copied into the request without the lock, so
        // that two CPUs receiving responses for one queue (two server
        // threads, or two receive queues) copy at once instead of taking
        // turns; the ledger keeps the request from completing or failing
        // until the copy has ended.
        let mut placing = None;
        {
            let mut g = self.inner.lock();
            match g.ledger.match_response(answer) {
                Err(why) => {
                    Stats::bump(match why {
                        Unmatched::Stale => &self.stats.drop_stale,
                        Unmatched::Mismatch => &self.stats.drop_mismatch,
                        Unmatched::Duplicate => &self.stats.drop_duplicate,
                    });
                    return;
                }
                Ok(Matched::Failed { id, err }) => {
                    done = g.ledger.fail(id, err).map(|b| (b, Err(err)));
                }
                // Whatever the protocol checked: a read's data must be in
                // the frame.
                Ok(Matched::Frames { data: Some((_, len)), .. })
                    if u64::from(answer.data_at) + u64::from(len) > u64::from(skb.len()) =>
                {
                    self.stats.count_malformed(Malformed::Length);
                    return;
                }
                Ok(Matched::Frames { id, frames, data }) => {
                    // Before the frames count as answered: a round trip is
                    // sampled from a request's first answer only.
                    let rtt = g.ledger.progress(id, now_ms());
                    done = None;
                    match data {
                        Some((offset, len)) => match g.ledger.begin_placing(id, frames.clone()) {
                            // The sample is taken once the data is in.
                            Some(buffer) => placing = Some((id, frames, buffer.clone(), offset, len, rtt)),
                            // It failed while another frame's data was being
                            // placed, and ends when that copy does.
                            None => {
                                Stats::bump(&self.stats.drop_stale);
                                return;
                            }
                        },
                        None => {
                            if let Some(rtt) = rtt {
                                g.rtt.sample(rtt);
                            }
                            done = g.ledger.answer(id, frames).map(|b| (b, Ok(())));
                        }
                    }
                }
            }
            space = g.ledger.take_space_signal();
            queued = g.ledger.has_queued();
        }
        if let Some((id, frames, buffer, offset, len, rtt)) = placing {
            let placed = buffer.fill_from(offset, &skb, answer.data_at, len).is_ok();
            // The request may complete below: no reference of ours may
            // outlive the placing.
            drop(buffer);
            let mut g = self.inner.lock();
            if let (true, Some(rtt)) = (placed, rtt) {
                g.rtt.sample(rtt);
            }
            done = g.ledger.end_placing(id, frames, placed);
            // A signal taken above stands: taking it cleared it.
            space = space.or(g.ledger.take_space_signal());
            queued = g.ledger.has_queued();
            drop(g);
            if !placed {
                // Unanswered again: the request's next resend fetches it.
                Stats::bump(&self.stats.drop_copy);
                self.finish(done, space, queued);
                return;
            }
        }
        // Handled, not dropped: freed as consumed, so drop monitors and
        // tracepoints see only the frames refused above.
        skb.consume();
        self.finish(done, space, queued);
    }

    /// After a response: hands what it completed to the driver, reports
    /// queue space, and sends what the freed window allows if frames wait
    /// (`queued`, as the ledger said under the lock). With none waiting
    /// there is nothing to send, and a request queued since then is sent
    /// by its own `queue`: skipping the lock's third trip per response
    /// matters when responses arrive on two CPUs at once.
    fn finish(&self, done: Option<(D::Buffer, Result)>, space: Option<u32>, queued: bool) {
        if let Some((buffer, status)) = done {
            Stats::bump(if status.is_ok() { &self.stats.completed } else { &self.stats.failed });
            self.core.driver.complete(buffer, status);
        }
        if let Some(free) = space {
            self.core.driver.queue_space(self.index, free);
        }
        if queued {
            self.drain();
        }
    }
}
