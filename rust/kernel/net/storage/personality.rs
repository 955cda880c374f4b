// SPDX-License-Identifier: GPL-2.0

//! The storage personality bound to one net device: transmit pacing,
//! response delivery into block buffers, retransmission and teardown.

use super::{
    ledger::{Command, Expiry, Ledger, Limits, Matched, Refused, Unmatched},
    rtt::RttEstimator,
    stats::{Snapshot, Stats},
    wire::{
        Direction, ExportInfo, Header, Opcode, Status, WireError, ETH_P_EBD_REQUEST,
        ETH_P_EBD_RESPONSE, HEADER_LEN,
    },
};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
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

/// Tag of the personality's own [`Opcode::Info`] exchanges; block request ids
/// are below [`Config::max_queue`], far from it.
const INFO_TAG: u32 = u32::MAX;

/// Frames built per turn of the transmit loop before the lock is dropped to
/// hand them to the device.
const TX_BATCH: usize = 16;

/// How often the personality's timer looks for requests that have waited
/// longer than the retransmission timeout, while any request is held: a
/// lost frame is resent at most this long after it became overdue.
const TICK: Delta = Delta::from_millis(50);

/// Memory a response's data is placed into: the block request's own pages.
///
/// A clone is another reference to the same request, held while a read's
/// data is placed without the personality's lock; every clone is dropped
/// before the request is handed back to [`StorageDriver::complete`].
pub trait BlockBuffer: Clone + Send + 'static {
    /// Copies request bytes `[offset, offset + dst.len())` into `dst` (a
    /// frame being built, for writes).
    ///
    /// Context: under the personality's lock, with bottom halves off, from
    /// whichever caller sends queued frames: `queue_rq`, blk-mq's timeout
    /// work (process context), response receive or the personality's timer
    /// (softirq). Must not sleep.
    fn copy_out(&self, offset: u32, dst: &mut [u8]) -> Result;

    /// Copies `len` bytes of `skb` from `skb_offset` straight into the request
    /// at `offset` (a read's response): the only copy received data makes.
    ///
    /// Context: response receive (softirq), without the personality's lock,
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

    /// The response to `buffer` is complete (its data, for a read, is in
    /// place) or it failed.
    ///
    /// Context: never under the personality's lock; from response receive
    /// or the personality's timer (softirq), blk-mq's timeout work, `queue`
    /// (when the device's MTU has dropped below the frame size) or `detach`
    /// (process context, possibly under RTNL from a net device notifier).
    /// Must not sleep.
    fn complete(&self, buffer: Self::Buffer, status: Result);

    /// Room for `free` more requests after a [`Refused::Full`].
    ///
    /// Context: response receive (softirq), never under the personality's
    /// lock. Must not sleep.
    fn queue_space(&self, _free: u32) {}
}

/// How to attach.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// The server's address; `None` discovers it with a broadcast
    /// [`Opcode::Info`] and binds to whoever answers first.
    pub server: Option<MacAddr>,
    /// Export number on the server.
    pub export: u16,
    /// Largest frame to send (header included), at most the device MTU; 0
    /// means the MTU.
    pub frame_size: u32,
    /// Most requests held at once; request ids run below it.
    pub max_queue: u32,
    /// Most frames awaiting an answer at once (see [`Limits::window`]).
    pub window: u32,
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

struct Inner<B> {
    ledger: Ledger<B>,
    /// `None` once detached.
    dev: Option<ARef<NetDevice>>,
    server: Option<MacAddr>,
    info: Option<ExportInfo>,
    /// The server's refusal of the Info request, if it refused (when
    /// discovering: the last refusal heard).
    info_refused: Option<Status>,
    /// No server was configured: the first one to accept is bound, and a
    /// refusal does not end the search (another server may have the
    /// export).
    discovering: bool,
    /// A transmit loop is running; others leave their frames to it.
    draining: bool,
    /// The device's MTU is below the frame size planned at attach (logged
    /// once per drop); requests fail with `EMSGSIZE` until it is raised.
    mtu_short: bool,
    /// How long the server takes to answer.
    rtt: RttEstimator,
    /// The timer ([`Core::ticker`]) is queued or running and will look at
    /// the ledger again; cleared by the tick that finds it empty.
    ticking: bool,
}

impl<B> Inner<B> {
    /// The server's answer to the Info request, once it is final: an
    /// acceptance, or a configured server's refusal.
    fn info_answer(&self) -> Option<Result<ExportInfo>> {
        match (self.info, self.info_refused) {
            (Some(info), _) => Some(Ok(info)),
            (None, Some(status)) if !self.discovering => Some(Err(status_error(status))),
            _ => None,
        }
    }
}

#[pin_data]
struct Core<D: StorageDriver> {
    driver: D,
    #[pin]
    inner: SpinLockBh<Inner<D::Buffer>>,
    stats: Stats,
    export: u16,
    /// This attachment's session id: random, never zero; the server keeps
    /// its state per session and echoes it, so two disks of one export on
    /// one device never take each other's responses.
    session: u32,
    local: MacAddr,
    payload: u32,
    timeout: Delta,
    /// Resends requests that heard nothing for a retransmission timeout
    /// ([`Core::tick`]), while any is held.
    #[pin]
    ticker: HrTimer<Core<D>>,
}

crate::impl_has_hr_timer! {
    impl{D: StorageDriver} HasHrTimer<Core<D>> for Core<D> {
        mode: RelativeSoftMode<Monotonic>,
        field: self.ticker,
    }
}

impl<D: StorageDriver> HrTimerCallback for Core<D> {
    type Pointer<'a> = Arc<Core<D>>;

    fn run(this: ArcBorrow<'_, Self>, mut ctx: HrTimerCallbackContext<'_, Self>) -> HrTimerRestart {
        if this.tick() {
            ctx.forward_now(TICK);
            HrTimerRestart::Restart
        } else {
            HrTimerRestart::NoRestart
        }
    }
}

// Locking: `Core::inner` is taken from process context (`queue`, blk-mq's
// timeout work, `query_info`, `detach`) and from softirq (response receive,
// the tick of a soft hrtimer), never from a hard interrupt handler, so it is
// a bottom-half spinlock: held,
// it keeps receive off this CPU while interrupts stay on, which is what
// building frames (GFP_ATOMIC allocation, data copies) and freeing a frame
// whose build failed need. The driver's callbacks run without it.

/// Receives the personality's response frames on its device.
struct Receiver<D: StorageDriver>(Arc<Core<D>>);

impl<D: StorageDriver> PacketHandler for Receiver<D> {
    fn receive(&self, skb: SkBuff, _dev: &NetDevice) {
        self.0.receive(skb);
    }
}

/// The storage personality of one net device, for one driver instance.
///
/// Requests are queued with [`Personality::queue`], sent in order while the
/// device and the response window have room, and handed back through
/// [`StorageDriver::complete`] when every response has arrived. Frames of
/// type [`ETH_P_EBD_REQUEST`] go out; frames of type [`ETH_P_EBD_RESPONSE`]
/// from the server come in; the device's other traffic is untouched.
///
/// # Invariants
///
/// While `receiver` holds a registration, `core.inner.dev` is `Some`; after
/// [`Personality::detach`] both are gone and the ledger is empty. `ticker`
/// holds the handle of `core.ticker` (with a reference to `core`) from
/// attach until [`Personality::detach`] has cleared `core.inner.dev`; the
/// timer is started again only under `core.inner`'s lock while `dev` is
/// `Some`, so it never runs after that handle is dropped.
#[pin_data(PinnedDrop)]
pub struct Personality<D: StorageDriver> {
    core: Arc<Core<D>>,
    #[pin]
    receiver: Mutex<Option<Pin<KBox<packet::Registration<Receiver<D>>>>>>,
    #[pin]
    ticker: Mutex<Option<ArcHrTimerHandle<Core<D>>>>,
}

/// Milliseconds on the monotonic clock, the ledger's time base.
fn now_ms() -> u64 {
    // Monotonic time is never negative.
    (Instant::<Monotonic>::now().as_nanos() / 1_000_000).unsigned_abs()
}

fn status_error(s: Status) -> Error {
    match s {
        Status::Ok | Status::IoError => EIO,
        Status::Invalid => EINVAL,
        Status::ReadOnly => EROFS,
        Status::OutOfRange => ENOSPC,
        Status::Unsupported => EOPNOTSUPP,
        Status::NoSuchExport => ENXIO,
        Status::Denied => EACCES,
    }
}

impl<D: StorageDriver> Personality<D> {
    /// Attaches to `dev` and starts receiving responses. Process context.
    ///
    /// `EINVAL` if the device has no unicast address or its MTU (or
    /// `frame_size`) cannot carry one sector per frame.
    pub fn attach(dev: ARef<NetDevice>, driver: D, config: Config) -> Result<Arc<Self>> {
        let local = dev.mac_addr().filter(|m| m.is_valid_unicast()).ok_or(EINVAL)?;
        let frame = match config.frame_size {
            0 => dev.mtu(),
            n => n.min(dev.mtu()),
        };
        let payload = super::wire::payload_per_frame(frame).ok_or(EINVAL)?;
        // SAFETY: `get_random_u32` has no precondition.
        let session = match unsafe { bindings::get_random_u32() } {
            0 => 1,
            n => n,
        };
        // SAFETY: As above.
        let first_seq = unsafe { bindings::get_random_u32() };
        let ledger = Ledger::new(
            Limits { max_queue: config.max_queue, payload, window: config.window, max_retries: config.max_retries },
            first_seq,
        )?;
        let held = dev.clone();
        let core = Arc::pin_init(
            pin_init!(Core {
                driver,
                inner <- {
                    let (name, key) = crate::sync::generic_lock_class!("net::storage::Core::inner");
                    let inner = Inner {
                        ledger,
                        dev: Some(held),
                        server: config.server,
                        info: None,
                        info_refused: None,
                        discovering: config.server.is_none(),
                        draining: false,
                        mtu_short: false,
                        rtt: RttEstimator::new(),
                        // Started below, once attached.
                        ticking: true,
                    };
                    SpinLockBh::new(inner, name, key)
                },
                stats: Stats::default(),
                export: config.export,
                session,
                local,
                payload,
                timeout: config.timeout,
                ticker <- HrTimer::new(),
            }),
            GFP_KERNEL,
        )?;
        let receiver = KBox::pin_init(
            packet::Registration::new(
                EtherType(ETH_P_EBD_RESPONSE),
                Some(dev),
                Receiver(core.clone()),
            ),
            GFP_KERNEL,
        )?;
        // The first tick finds the ledger empty and lets the timer rest
        // until a request is queued.
        let ticker = core.clone().start(TICK);
        Arc::pin_init(
            pin_init!(Personality {
                core,
                receiver <- {
                    let (name, key) = crate::sync::generic_lock_class!("net::storage::Personality::receiver");
                    Mutex::new(Some(receiver), name, key)
                },
                ticker <- {
                    let (name, key) = crate::sync::generic_lock_class!("net::storage::Personality::ticker");
                    Mutex::new(Some(ticker), name, key)
                },
            }),
            GFP_KERNEL,
        )
    }

    /// The driver given to [`Personality::attach`].
    pub fn driver(&self) -> &D {
        &self.core.driver
    }

    /// Payload bytes per frame: the declustering unit.
    pub fn payload_per_frame(&self) -> u32 {
        self.core.payload
    }

    /// Bytes the personality pins for as long as it is attached: its own
    /// state and the ledger's slots. Frames in flight come on top, bounded
    /// by [`Personality::window_bytes`].
    pub fn pinned_bytes(&self) -> usize {
        core::mem::size_of::<Core<D>>() + core::mem::size_of::<Self>() + self.core.inner.lock().ledger.memory_bytes()
    }

    /// Most bytes of frames the window lets be outstanding at once (payload
    /// of every response frame it admits).
    pub fn window_bytes(&self) -> usize {
        self.core.inner.lock().ledger.limits().window as usize * self.core.payload as usize
    }

    /// Maximum queue length (requests held at once).
    pub fn max_queue_len(&self) -> u32 {
        self.core.inner.lock().ledger.limits().max_queue
    }

    /// Current queue length.
    pub fn queue_len(&self) -> u32 {
        self.core.inner.lock().ledger.len()
    }

    /// This attachment's session id (random, never zero), which every frame
    /// carries.
    pub fn session(&self) -> u32 {
        self.core.session
    }

    /// The server bound to, once known.
    pub fn server(&self) -> Option<MacAddr> {
        self.core.inner.lock().server
    }

    /// Whether [`Personality::detach`] has run (or the device went away).
    pub fn is_detached(&self) -> bool {
        self.core.inner.lock().dev.is_none()
    }

    /// The counters now.
    pub fn stats(&self) -> Snapshot {
        self.core.stats.snapshot()
    }

    /// Queues `buffer`'s request under `id` (below the maximum queue length,
    /// unused by any other held request). Any context that may transmit
    /// (interrupts enabled, not in hard interrupt).
    ///
    /// On [`Refused::Full`] the caller keeps the request and may try again
    /// after [`StorageDriver::queue_space`]; [`Refused::Invalid`] is
    /// permanent for this request.
    pub fn queue(&self, id: u32, buffer: D::Buffer, command: Command) -> Result<(), Refused<D::Buffer>> {
        let core = &*self.core;
        {
            let mut g = core.inner.lock();
            let Inner { dev: Some(dev), server: Some(_), mtu_short, .. } = &mut *g else {
                return Err(Refused::Invalid(buffer, ENODEV));
            };
            if !core.frames_fit(mtu_short, dev) {
                Stats::bump(&core.stats.failed_mtu);
                return Err(Refused::Invalid(buffer, EMSGSIZE));
            }
            if let Err(refused) = g.ledger.admit(id, buffer, command) {
                if matches!(refused, Refused::Full(_)) {
                    Stats::bump(&core.stats.queue_full);
                }
                return Err(refused);
            }
            Stats::bump(&core.stats.requests);
            core.stats.queue_high_water.fetch_max(u64::from(g.ledger.high_water()), Relaxed);
            if !g.ticking {
                g.ticking = true;
                // SAFETY: `inner` is held with `dev` set, so `core` outlives the timer (invariant).
                unsafe { <Core<D> as HasHrTimer<Core<D>>>::start(&*self.core, TICK) };
            }
        }
        core.drain();
        Ok(())
    }

    /// The response timer of request `id` expired; `is_it` confirms the held
    /// request is the one whose timer fired. Retransmits what is unanswered
    /// with a doubled timeout, or ends the request with `EIO` once
    /// [`Config::max_retries`] are spent; while an answer's data is being
    /// placed into the request, it does neither and asks to be called
    /// again in a millisecond. Process or softirq context.
    pub fn expire(&self, id: u32, is_it: impl FnOnce(&D::Buffer) -> bool) -> TimerAction {
        let core = &*self.core;
        let base_ms = core.timeout.as_millis().max(1).unsigned_abs();
        let verdict = core.inner.lock().ledger.expire(id, now_ms(), base_ms, is_it);
        let rearm = |ms: u64| TimerAction::Rearm(Delta::from_millis(i64::try_from(ms).unwrap_or(i64::MAX)));
        match verdict {
            Expiry::NotFound => TimerAction::Stop,
            Expiry::NotYet(wait_ms) => {
                core.drain();
                rearm(wait_ms)
            }
            Expiry::Retry { wait_ms, .. } => {
                Stats::bump(&core.stats.retransmits);
                core.drain();
                rearm(wait_ms)
            }
            Expiry::GiveUp(buffer) => {
                Stats::bump(&core.stats.timeouts);
                Stats::bump(&core.stats.failed);
                core.driver.complete(buffer, Err(EIO));
                TimerAction::Stop
            }
        }
    }

    /// Asks the server for the export's geometry, binding to the server
    /// that answers when discovering. Sends up to `attempts` requests,
    /// `interval` apart. Process context (sleeps).
    ///
    /// A configured server's refusal ends the query with its error at once.
    /// When discovering, refusals do not: the first server that accepts is
    /// bound, and only if none does by the last attempt is the query failed
    /// with the last refusal's error (or `ETIMEDOUT` if nobody answered).
    pub fn query_info(&self, attempts: u32, interval: Delta) -> Result<ExportInfo> {
        let core = &*self.core;
        for attempt in 0..attempts {
            let (dev, dst, finished) = {
                let g = core.inner.lock();
                if let Some(answer) = g.info_answer() {
                    return answer;
                }
                (g.dev.clone().ok_or(ENODEV)?, g.server.unwrap_or(MacAddr::BROADCAST), g.ledger.finished())
            };
            let header = Header {
                opcode: Opcode::Info,
                flags: 0,
                tag: INFO_TAG,
                seq: attempt,
                export: core.export,
                status: Status::Ok,
                offset: 0,
                length: 0,
                frag_offset: 0,
                frag_len: 0,
                session: 0,
                finished,
            };
            match core.build_frame(&dev, dst, header, None, GFP_KERNEL).and_then(|skb| skb.transmit(&dev)) {
                Ok(_) => Stats::bump(&core.stats.tx_frames),
                Err(_) => Stats::bump(&core.stats.tx_errors),
            }
            drop(dev);
            let step = Delta::from_millis(10);
            let mut waited = 0;
            while waited < interval.as_millis() {
                fsleep(step);
                waited += 10;
                if let Some(answer) = core.inner.lock().info_answer() {
                    return answer;
                }
            }
        }
        let g = core.inner.lock();
        Err(g.info_refused.map_or(ETIMEDOUT, status_error))
    }

    /// Stops receiving, drops the device and ends every held request with
    /// `EIO`. Later [`Personality::queue`] calls are refused with `ENODEV`.
    /// Process context (waits for running receive handlers). Idempotent.
    pub fn detach(&self) {
        let registration = self.receiver.lock().take();
        // Unregistering waits until no handler runs any more.
        drop(registration);
        let core = &*self.core;
        let dev = core.inner.lock().dev.take();
        drop(dev);
        // No tick starts the timer again now that `dev` is gone; dropping
        // the handle cancels it and waits for a tick that is running.
        let ticker = self.ticker.lock().take();
        drop(ticker);
        core.fail_held(EIO, None);
    }
}

#[pinned_drop]
impl<D: StorageDriver> PinnedDrop for Personality<D> {
    fn drop(self: Pin<&mut Self>) {
        self.detach();
    }
}

impl<D: StorageDriver> Core<D> {
    /// Builds one request frame to `dst`, copying a write's data once from
    /// the request into the frame.
    fn build_frame(
        &self,
        dev: &NetDevice,
        dst: MacAddr,
        mut header: Header,
        data: Option<(&D::Buffer, u32, u32)>,
        flags: crate::alloc::Flags,
    ) -> Result<SkBuff<Writable>> {
        header.export = self.export;
        header.session = self.session;
        let data_len = data.map_or(0, |(_, _, len)| len);
        let total = (HLEN + HEADER_LEN) as u32 + data_len;
        let mut skb = SkBuff::alloc_for(dev, total, flags)?;
        let frame = skb.put(total)?;
        let ethertype = EtherType(ETH_P_EBD_REQUEST);
        EthHdr { dst, src: self.local, ethertype }.write(frame)?;
        header.encode(frame.get_mut(HLEN..).ok_or(EINVAL)?).map_err(|_| EINVAL)?;
        if let Some((buffer, offset, len)) = data {
            let at = HLEN + HEADER_LEN;
            buffer.copy_out(offset, frame.get_mut(at..at + len as usize).ok_or(EINVAL)?)?;
        }
        skb.set_protocol(ethertype);
        Ok(skb)
    }

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
            let rto = g.rtt.rto_ms(self.timeout.as_millis().unsigned_abs() / 2);
            self.stats.rto_ms.store(rto, Relaxed);
            let resent = g.ledger.resend_overdue(now, rto);
            if resent > 0 {
                g.rtt.back_off();
            }
            (resent, g.ledger.has_queued())
        };
        self.stats.early_resends.fetch_add(u64::from(resent), Relaxed);
        // Also what a full window or a stopped device left queued, should
        // nothing else come to send it.
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
                self.driver.complete(buffer, Err(err));
            }
        }
    }

    /// Whether the device's MTU still carries the frames planned at attach.
    /// Logs when that changes: a link whose MTU drops below the frame size
    /// would drop every data frame, so requests fail at once instead of
    /// timing out one by one, and work again once the MTU is raised.
    fn frames_fit(&self, mtu_short: &mut bool, dev: &NetDevice) -> bool {
        let mtu = dev.mtu();
        let frame = HEADER_LEN as u32 + self.payload;
        let fits = frame <= mtu;
        if fits == *mtu_short {
            *mtu_short = !fits;
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

    fn device_busy(dev: &NetDevice) -> bool {
        (0..dev.num_tx_queues()).any(|q| dev.tx_queue_stopped(q).unwrap_or(false))
    }

    /// Sends queued frames, in order, while the device's transmit queues
    /// run and the window has room. One caller drains at a time; frames
    /// queued meanwhile are picked up by its next turn. Frames are built
    /// under the lock and handed to the device without it.
    fn drain(&self) {
        let mut g = self.inner.lock();
        if g.draining {
            return;
        }
        loop {
            let (Some(dev), Some(server)) = (g.dev.clone(), g.server) else {
                g.draining = false;
                return;
            };
            if !self.frames_fit(&mut g.mtu_short, &dev) {
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
            let mut batch: [Option<SkBuff<Writable>>; TX_BATCH] = core::array::from_fn(|_| None);
            let mut n = 0;
            while n < TX_BATCH && !Self::device_busy(&dev) {
                let Some(job) = g.ledger.next_frame(now_ms()) else {
                    break;
                };
                let data = match job.data {
                    Some((offset, len)) => match g.ledger.request(job.id) {
                        Some(buffer) => Some((buffer, offset, len)),
                        None => continue,
                    },
                    None => None,
                };
                match self.build_frame(&dev, server, job.header, data, GFP_ATOMIC) {
                    Ok(skb) => {
                        batch[n] = Some(skb);
                        n += 1;
                    }
                    // Counted as lost; the personality's timer resends it.
                    Err(_) => Stats::bump(&self.stats.tx_errors),
                }
            }
            if n == 0 {
                g.draining = false;
                return;
            }
            g.draining = true;
            drop(g);
            for skb in batch.into_iter().flatten() {
                match skb.transmit(&dev) {
                    Ok(_) => Stats::bump(&self.stats.tx_frames),
                    Err(_) => Stats::bump(&self.stats.tx_errors),
                }
            }
            drop(dev);
            g = self.inner.lock();
        }
    }

    /// A response frame arrived: validate everything, place a read's data,
    /// complete what is complete, then send what the freed window allows.
    fn receive(&self, skb: SkBuff) {
        Stats::bump(&self.stats.rx_frames);
        let mut raw = [0u8; HEADER_LEN];
        if skb.copy_bits(0, &mut raw).is_err() {
            self.stats.count_malformed(WireError::Short);
            return;
        }
        let header = match Header::parse_header(&raw, Direction::Response) {
            Ok(h) => h,
            Err(e) => {
                self.stats.count_malformed(e);
                return;
            }
        };
        let payload = header.payload_len(Direction::Response);
        if payload > (skb.len() as usize).saturating_sub(HEADER_LEN) {
            self.stats.count_malformed(WireError::BadLength);
            return;
        }
        let source = skb.eth_hdr().map(|e| e.src);
        // Only responses addressed to this host (not ones seen in promiscuous
        // mode), for this export and this attachment's session.
        if header.export != self.export || header.session != self.session || source.is_none() || !skb.is_to_host() {
            Stats::bump(&self.stats.drop_foreign);
            return;
        }
        if header.opcode == Opcode::Info {
            if self.receive_info(&header, &skb, source) {
                skb.consume();
            }
            return;
        }
        let mut done;
        let mut space;
        let mut queued;
        // A read's data is copied into the request without the lock, so
        // that two CPUs receiving responses for one disk (two server
        // threads, or two receive queues) copy at once instead of taking
        // turns; the ledger keeps the request from completing or failing
        // until the copy has ended.
        let mut placing = None;
        {
            let mut g = self.inner.lock();
            if g.server.is_none() || g.server != source {
                Stats::bump(&self.stats.drop_foreign);
                return;
            }
            match g.ledger.match_response(&header) {
                Err(why) => {
                    Stats::bump(match why {
                        Unmatched::Stale => &self.stats.drop_stale,
                        Unmatched::Mismatch => &self.stats.drop_mismatch,
                        Unmatched::Duplicate => &self.stats.drop_duplicate,
                    });
                    return;
                }
                Ok(Matched::Failed { id, status }) => {
                    let err = status_error(status);
                    done = g.ledger.fail(id, err).map(|b| (b, Err(err)));
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
            let placed = buffer.fill_from(offset, &skb, HEADER_LEN as u32, len).is_ok();
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
            self.driver.complete(buffer, status);
        }
        if let Some(free) = space {
            self.driver.queue_space(free);
        }
        if queued {
            self.drain();
        }
    }

    /// An answer to the personality's Info request. Returns whether it was
    /// taken (an answer from the server, or the first one when
    /// discovering); what is refused is counted.
    fn receive_info(&self, header: &Header, skb: &SkBuff, source: Option<MacAddr>) -> bool {
        let mut payload = [0u8; ExportInfo::LEN];
        if header.tag == INFO_TAG && header.status != Status::Ok {
            let mut g = self.inner.lock();
            if g.server.is_none() || g.server == source {
                g.info_refused = Some(header.status);
                return true;
            }
            Stats::bump(&self.stats.drop_foreign);
            return false;
        }
        let parsed = if header.tag != INFO_TAG {
            None
        } else {
            skb.copy_bits(HEADER_LEN as u32, &mut payload)
                .ok()
                .and_then(|()| ExportInfo::parse(&payload).ok())
        };
        let Some(info) = parsed else {
            Stats::bump(&self.stats.drop_mismatch);
            return false;
        };
        let mut g = self.inner.lock();
        match (g.server, source) {
            (Some(s), Some(src)) if s == src => g.info = Some(info),
            (None, Some(src)) if src.is_valid_unicast() => {
                g.server = Some(src);
                g.info = Some(info);
            }
            _ => {
                Stats::bump(&self.stats.drop_foreign);
                return false;
            }
        }
        true
    }
}
