// SPDX-License-Identifier: GPL-2.0

//! Peer DMA: received frames that stay in a NIC's own memory and move from
//! NIC to NIC without a copy in host memory.
//!
//! A driver whose device keeps received frames in device memory implements
//! [`PeerDmaOps`], makes a [`Provider`] of it and registers its device with
//! [`Registration::register_capable`](super::driver::Registration::register_capable).
//! A forwarding path finds a device's capability with [`CapRef::lookup`] and
//! [`claims`](CapRef::claim) the device. From then on the device hands each
//! received frame to the path's [`RxConsumer`] as a [`DevBuf`], a handle to
//! the frame in device memory, instead of an skb to the stack. With it the
//! path can:
//!
//! - read and write header fields in place ([`DevBuf::read`],
//!   [`DevBuf::write`]): each access is one bus transaction, and a read
//!   holds the CPU until the bus answers (uncached PIO);
//! - or work on a copy of the header the device made in host memory at
//!   receive ([`HeaderMode::Copy`], one DMA), written back with the send;
//! - send the frame out of the same device (a pointer move inside it, never
//!   a DMA from the device to itself), out of another capable device (one
//!   peer DMA, after which that device transmits), or into host memory as an
//!   skb ([`DevBuf::to_skb`], [`DevBuf::to_stack`]), for the stack or for a
//!   device that is not capable;
//! - or drop it, which releases the device memory.
//!
//! Running out of device memory or transmit room is an answer
//! ([`SendError::Busy`], [`SendError::NoMemory`]), never a wait; the
//! refused path keeps the frame and is told once the device that refused
//! may have room again ([`RxConsumer::room`]), so that frames can wait in
//! the ingress device's memory instead of being dropped.
//!
//! # What keeps what alive
//!
//! A [`CapRef`], [`DevBuf`], [`Reserved`] or [`Claim`] keeps a small shared
//! core alive, never the device, its driver state or the driver's module.
//! The driver's operations sit in the core behind a [`Revocable`]: the
//! registration withdraws the capability before it unregisters the device,
//! and withdrawing waits until no call into the driver or the consumer
//! runs. After that every operation on a handle fails (`ENODEV`,
//! [`SendError::Gone`]) and dropping a [`DevBuf`] does nothing: the driver
//! reclaims its memory wholesale. A lookup finds the capability through the
//! device itself, so it can never match another device that later reuses
//! the address.

use super::{
    device::NetDevice,
    napi::{NapiPoll, Poll},
    skb::{SkBuff, Writable},
};
use crate::{
    bindings,
    prelude::*,
    revocable::Revocable,
    sync::{rcu, Arc, ArcBorrow, SpinLockBh},
};
use core::{
    ffi::c_void,
    sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering},
};

/// The longest header a device copies to host memory ([`HeaderMode::Copy`]).
pub const MAX_HEADER: usize = 128;

/// How a consumer reaches the headers of the frames it receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderMode {
    /// Nothing is copied: fields are read and written in device memory, one
    /// bus transaction each ([`DevBuf::read`], [`DevBuf::write`]).
    InPlace,
    /// The first `n` bytes (at most [`MAX_HEADER`]) are DMA'd to host memory
    /// at receive, in one transaction ([`RxFrame::header`]).
    Copy(u8),
}

/// A frame's place in a device's memory, as its driver names it. Not
/// `Clone`: it is owned by one handle at a time and goes back to the driver
/// once.
#[derive(Debug)]
pub struct Slot(u64);

impl Slot {
    /// The driver's name for a place in its memory.
    pub fn new(raw: u64) -> Self {
        Slot(raw)
    }

    /// The driver's encoding.
    pub fn raw(&self) -> u64 {
        self.0
    }
}

/// Why a driver refused a transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No transmit room now.
    Busy,
    /// Device memory is exhausted.
    NoMemory,
    /// The frame cannot go that way (longer than the egress MTU, say).
    Invalid,
}

/// A frame header in host memory, at most [`MAX_HEADER`] bytes.
#[derive(Clone)]
pub struct Header {
    bytes: [u8; MAX_HEADER],
    len: u8,
}

impl Header {
    /// A copy of `src`; `EINVAL` if longer than [`MAX_HEADER`].
    pub fn new(src: &[u8]) -> Result<Self> {
        if src.len() > MAX_HEADER {
            return Err(EINVAL);
        }
        let mut bytes = [0; MAX_HEADER];
        bytes[..src.len()].copy_from_slice(src);
        // Fits: at most `MAX_HEADER` (128).
        Ok(Header { bytes, len: src.len() as u8 })
    }

    /// A header of `len` bytes filled by `fill` (a device's DMA into host
    /// memory); `EINVAL` if `len` is longer than [`MAX_HEADER`].
    pub fn filled(len: usize, fill: impl FnOnce(&mut [u8])) -> Result<Self> {
        if len > MAX_HEADER {
            return Err(EINVAL);
        }
        let mut h = Header { bytes: [0; MAX_HEADER], len: len as u8 };
        fill(&mut h.bytes[..len]);
        Ok(h)
    }

    /// The header bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The header bytes, to edit.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.bytes[..usize::from(self.len)]
    }
}

/// The source side of a peer transfer, as the destination sees it: for the
/// destination to charge its own bus only when the transfer crosses to
/// another one, and to transmit no earlier than the transfer ends.
#[derive(Clone, Copy, Debug)]
pub struct PeerSource {
    /// The bus the source sits on: an address unique to that bus, or 0 for
    /// none. Drivers that model no bus pass 0.
    pub interconnect: usize,
    /// How long from now the transfer takes on the source's side, in ns
    /// (relative, so that two drivers need not share a clock).
    pub ends_in_ns: u64,
}

/// A transfer from one device's memory into another's, queued on the
/// source device ([`PeerDmaOps::peer_transfer`]).
pub struct PeerJob {
    /// The frame, in the source device's memory.
    pub src: Slot,
    /// Its length in bytes.
    pub len: u32,
    /// A header to write over the frame's start first (one host-to-device
    /// DMA, ordered before the peer transfer).
    pub header: Option<Header>,
    /// Room reserved in the destination's memory.
    pub dst: Reserved,
}

/// The operations of a device that keeps frames in its own memory.
///
/// The core calls them only while the capability is live, from any context
/// but hard interrupts and inside an RCU read-side section: they must not
/// sleep. They may be called from a consumer running in the device's own
/// NAPI poll, so they must not take a lock the poll holds around
/// [`Provider::deliver`].
pub trait PeerDmaOps: Send + Sync + 'static {
    /// Gives `slot` back to free memory.
    fn release(&self, slot: Slot);

    /// Reads `out.len()` bytes at `off` of the frame (bounds checked by the
    /// core) by PIO: one bus transaction the CPU waits for.
    fn pio_read(&self, slot: &Slot, off: u32, out: &mut [u8]) -> Result;

    /// Writes `bytes` at `off` of the frame by PIO (posted writes).
    fn pio_write(&self, slot: &mut Slot, off: u32, bytes: &[u8]) -> Result;

    /// Self transfer: queues the frame for transmission by this device,
    /// moving it inside device memory (after writing `header` over its
    /// start, one DMA, if given). Gives the slot back on refusal.
    fn transmit_own(&self, slot: Slot, len: u32, header: Option<&Header>) -> Result<(), (Refusal, Slot)>;

    /// Destination side of a peer transfer: room for `len` bytes in this
    /// device's transmit memory.
    fn reserve(&self, len: u32) -> Result<Slot, Refusal>;

    /// Destination side of a peer transfer: `fill` writes the frame into
    /// the reserved `slot`, then this device transmits it, not before
    /// `from.ends_in_ns` from now.
    fn fill_and_transmit(&self, slot: Slot, len: u32, from: PeerSource, fill: &mut dyn FnMut(&mut [u8]));

    /// Source side of a peer transfer: queues `job` on this device's DMA
    /// engine, which moves the frame into `job.dst` with
    /// [`Reserved::fill_and_transmit`] and then releases `job.src`. Gives
    /// the job back on refusal.
    fn peer_transfer(&self, job: PeerJob) -> Result<(), (Refusal, PeerJob)>;

    /// Fallback: queues a DMA of the whole frame into an skb, which the
    /// device's poll then hands to [`Provider::deliver_skb`] with `tag` (or,
    /// with no tag, to the stack). Gives the slot back on refusal.
    fn to_skb(&self, slot: Slot, len: u32, tag: Option<u64>) -> Result<(), (Refusal, Slot)>;

    /// A consumer claimed the device (`Some`) or let it go (`None`): from
    /// the next frame on, deliver [`DevBuf`]s (or skbs). Called with the
    /// claim's bottom-half spinlock held.
    fn set_claimed(&self, mode: Option<HeaderMode>);
}

/// Where frames a consumer does not keep go: the stack, as received on the
/// ingress device. A NAPI poll is one.
pub trait Stack {
    /// Hands `skb` to the stack (GRO).
    fn receive(&mut self, skb: SkBuff<Writable>) -> Result;
}

impl<T: NapiPoll> Stack for Poll<'_, T> {
    fn receive(&mut self, skb: SkBuff<Writable>) -> Result {
        Poll::receive(self, skb)
    }
}

/// A forwarding path: what a claimed device hands its frames to. Its
/// callbacks run in softirq inside an RCU read section: they must not sleep,
/// and so must not drop a [`Claim`].
pub trait RxConsumer: Send + Sync + 'static {
    /// A frame the claimed device received. Runs in the device's NAPI poll
    /// (softirq, one CPU at a time per device): must not sleep.
    fn receive(&self, rx: &mut RxCtx<'_>, frame: RxFrame);

    /// A buffer sent to host memory with [`DevBuf::to_skb`] arrived. Runs
    /// in the poll of the device that held the buffer.
    fn skb_ready(&self, rx: &mut RxCtx<'_>, skb: SkBuff<Writable>, tag: u64);

    /// A [`DevBuf::send`] of a frame of the claimed device was refused for
    /// want of room ([`SendError::Busy`] or [`SendError::NoMemory`]), and
    /// the device that refused may have room now, or has gone. Once per
    /// refusal (refusals by one device before it frees room are told once),
    /// from that device driver's context (process or softirq, never a hard
    /// interrupt) in an RCU read section: must not sleep. It may come when
    /// there is no room after all; a send refused again is told again.
    fn room(&self) {}
}

/// What a consumer may do inside a device's poll besides handling the frame.
pub struct RxCtx<'a> {
    core: &'a Arc<Core>,
    stack: &'a mut dyn Stack,
}

impl RxCtx<'_> {
    /// The device whose poll this is.
    pub fn ingress(&self) -> CapRef {
        CapRef(self.core.clone())
    }

    /// Whether `cap` is the device whose poll this is.
    pub fn is_ingress(&self, cap: &CapRef) -> bool {
        Arc::ptr_eq(self.core, &cap.0)
    }

    /// Hands `skb` to the stack as received on the ingress device.
    pub fn to_stack(&mut self, skb: SkBuff<Writable>) -> Result {
        self.stack.receive(skb)
    }
}

/// A received frame, as a claimed device hands it to its consumer.
pub struct RxFrame {
    /// The frame in device memory.
    pub buf: DevBuf,
    header: Option<Header>,
}

impl RxFrame {
    /// The copy of the header made at receive ([`HeaderMode::Copy`]);
    /// edits reach the frame only through [`DevBuf::send`].
    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }

    /// The frame and its header copy.
    pub fn into_parts(self) -> (DevBuf, Option<Header>) {
        (self.buf, self.header)
    }
}

/// A device's capability, shared by its driver ([`Provider`]) and the
/// handles consumers hold.
///
/// # Invariants
///
/// While `ops` is not revoked, the driver's operations are usable: the
/// device is registered and its memory live. `dev` is the address of the
/// device the capability was published on (0 before), used only to compare.
/// `has_waiting` is false only while `waiting` is empty.
#[pin_data]
struct Core {
    dev: AtomicUsize,
    #[pin]
    ops: Revocable<KBox<dyn PeerDmaOps>>,
    #[pin]
    claim: SpinLockBh<Option<ClaimState>>,
    /// Devices whose consumers this device refused for want of room, each
    /// once, to be told when it has room ([`Provider::room_freed`]).
    #[pin]
    waiting: SpinLockBh<KVec<Arc<Core>>>,
    /// Whether `waiting` may hold any: the driver's check on every pass.
    has_waiting: AtomicBool,
}

#[derive(Clone)]
struct ClaimState {
    consumer: Arc<dyn RxConsumer>,
    mode: HeaderMode,
}

impl Core {
    /// Runs `f` on the driver's operations, or returns `None` once revoked.
    fn with_ops<R>(&self, f: impl FnOnce(&dyn PeerDmaOps) -> R) -> Option<R> {
        let guard = rcu::read_lock();
        let r = self.ops.try_access_with_guard(&guard).map(|ops| f(&**ops));
        drop(guard);
        r
    }

    /// Adds `waiter` to the devices told when this one has room, once;
    /// false if there was no memory to note it. Never sleeps.
    fn add_waiter(&self, waiter: &Arc<Core>) -> bool {
        let mut waiting = self.waiting.lock();
        if waiting.iter().any(|w| Arc::ptr_eq(w, waiter)) {
            return true;
        }
        if waiting.push(waiter.clone(), GFP_ATOMIC).is_err() {
            return false;
        }
        self.has_waiting.store(true, Ordering::Release);
        true
    }

    /// Tells every waiting device's consumer that this device may have
    /// room, and forgets them.
    fn wake_waiting(&self) {
        if !self.has_waiting.load(Ordering::Acquire) {
            return;
        }
        let waiting = {
            let mut waiting = self.waiting.lock();
            self.has_waiting.store(false, Ordering::Relaxed);
            core::mem::take(&mut *waiting)
        };
        for w in waiting.iter() {
            w.tell_room();
        }
    }

    /// Tells this device's consumer, if any, that a device that refused it
    /// room may have some now.
    fn tell_room(&self) {
        let guard = rcu::read_lock();
        if self.ops.try_access_with_guard(&guard).is_some() {
            // A clone, as in `Provider::deliver`: the consumer runs without
            // the claim's lock, and a dropped claim waits for this section.
            let state = self.claim.lock().clone();
            if let Some(state) = state {
                state.consumer.room();
            }
        }
        drop(guard);
    }
}

/// Runs `attempt`; if `at` refused it for want of room, registers `waiter`
/// with `at` and runs it once more, so that room freed between the refusal
/// and the registration is not missed (`at` wakes its waiters after it
/// frees room, under the same driver locks the attempt takes).
fn retry_after_wait<T, U>(
    at: &Core,
    waiter: &Arc<Core>,
    what: T,
    mut attempt: impl FnMut(T) -> Result<U, (Refusal, T)>,
) -> Result<U, (Refusal, T)> {
    match attempt(what) {
        Err((Refusal::Busy | Refusal::NoMemory, what)) if at.add_waiter(waiter) => attempt(what),
        r => r,
    }
}

/// The driver's side of a capability.
///
/// A driver makes one per device before registering it (its NAPI poll
/// delivers through it), and registers the device with
/// [`Registration::register_capable`](super::driver::Registration::register_capable),
/// which publishes it and withdraws it again before unregistering. Clones
/// name the same capability.
#[derive(Clone)]
pub struct Provider(Arc<Core>);

impl Provider {
    /// A capability offering `ops`, not yet published.
    pub fn new(ops: impl PeerDmaOps) -> Result<Self> {
        let ops: KBox<dyn PeerDmaOps> = KBox::new(ops, GFP_KERNEL)?;
        let core = Arc::pin_init(
            pin_init!(Core {
                dev: AtomicUsize::new(0),
                ops <- Revocable::new(ops),
                claim <- {
                    let (name, key) = crate::sync::generic_lock_class!("net::peer_dma::Core::claim");
                    SpinLockBh::new(None, name, key)
                },
                waiting <- {
                    let (name, key) = crate::sync::generic_lock_class!("net::peer_dma::Core::waiting");
                    SpinLockBh::new(KVec::new(), name, key)
                },
                has_waiting: AtomicBool::new(false),
            }),
            GFP_KERNEL,
        )?;
        Ok(Provider(core))
    }

    /// The capability as consumers see it.
    pub fn cap(&self) -> CapRef {
        CapRef(self.0.clone())
    }

    /// The device may have room again (its transmit queue or memory
    /// drained): tells each consumer it refused for want of room
    /// ([`RxConsumer::room`]). The driver calls it after freeing room,
    /// holding none of the locks its operations take, in process or
    /// softirq context; it costs one atomic load when no one waits. Never
    /// from inside an operation: the consumer may send from `room`.
    pub fn room_freed(&self) {
        self.0.wake_waiting();
    }

    /// Whether a consumer has claimed the device.
    pub fn is_claimed(&self) -> bool {
        self.0.claim.lock().is_some()
    }

    /// Hands a received frame to the consumer. Called from the device's NAPI
    /// poll (`stack`). Gives the slot back if no consumer has claimed the
    /// device (any longer) or the capability was withdrawn: the driver then
    /// delivers the frame to the stack itself.
    pub fn deliver(&self, stack: &mut dyn Stack, slot: Slot, len: u32, header: Option<Header>) -> Result<(), Slot> {
        let guard = rcu::read_lock();
        if self.0.ops.try_access_with_guard(&guard).is_none() {
            return Err(slot);
        }
        // A clone, so that the consumer runs without the claim's lock held;
        // withdrawing or dropping the claim waits for this read section
        // before it drops its own reference, so the clone is never the last.
        let Some(state) = self.0.claim.lock().clone() else {
            return Err(slot);
        };
        let frame = RxFrame { buf: DevBuf { core: self.0.clone(), slot: Some(slot), len }, header };
        let mut rx = RxCtx { core: &self.0, stack };
        state.consumer.receive(&mut rx, frame);
        drop(state);
        drop(guard);
        Ok(())
    }

    /// Hands an skb made with [`DevBuf::to_skb`] to the consumer, or to the
    /// stack if the device is no longer claimed.
    pub fn deliver_skb(&self, stack: &mut dyn Stack, skb: SkBuff<Writable>, tag: u64) -> Result {
        let guard = rcu::read_lock();
        let state = match self.0.ops.try_access_with_guard(&guard) {
            Some(_) => self.0.claim.lock().clone(),
            None => None,
        };
        let r = match &state {
            Some(state) => {
                let mut rx = RxCtx { core: &self.0, stack };
                state.consumer.skb_ready(&mut rx, skb, tag);
                Ok(())
            }
            None => stack.receive(skb),
        };
        drop(state);
        drop(guard);
        r
    }

    /// Publishes the capability on `dev`; `EBUSY` if it already was (on
    /// any device).
    ///
    /// # Safety
    ///
    /// `dev` must be a registered device, allocated by the overlay's
    /// registration with [`DEVICE_TYPE`], that [`Provider::withdraw`] is
    /// called for before it is unregistered.
    pub(crate) unsafe fn publish(&self, dev: *mut bindings::net_device) -> Result {
        self.0.dev.compare_exchange(0, dev as usize, Ordering::Relaxed, Ordering::Relaxed).map_err(|_| EBUSY)?;
        let entry = Arc::into_raw(self.0.clone());
        // For devices of `DEVICE_TYPE` only this module touches `ml_priv`, atomically.
        // SAFETY: `ml_priv` is a pointer-sized, aligned field of the live device.
        let slot = unsafe { ml_priv(dev) };
        // Released: a lookup that sees the pointer sees the core initialised.
        slot.store(entry.cast_mut().cast(), Ordering::Release);
        Ok(())
    }

    /// Withdraws the capability from `dev`: lookups stop finding it, the
    /// claim goes, and once no call into the driver or the consumer runs,
    /// the driver's operations are dropped. Process context (waits for an
    /// RCU grace period).
    ///
    /// # Safety
    ///
    /// `dev` is the device it was published on, still registered.
    pub(crate) unsafe fn withdraw(&self, dev: *mut bindings::net_device) {
        crate::task::might_sleep();
        // SAFETY: As in `publish`; the device is live (caller).
        let entry = unsafe { ml_priv(dev) }.swap(core::ptr::null_mut(), Ordering::AcqRel);
        {
            // The driver stops preparing frames for a consumer it is about
            // to lose. The claim itself stays: only dropping the `Claim`
            // drops the consumer, after a grace period of its own, so that
            // the consumer's owner knows when its code no longer runs.
            let state = self.0.claim.lock();
            if state.is_some() {
                self.0.with_ops(|ops| ops.set_claimed(None));
            }
        }
        // Waits until no lookup, driver call or delivery runs (each runs in
        // an RCU read section), then drops the driver's operations; a
        // delivery after this finds them revoked and refuses.
        let revoked = self.0.ops.revoke();
        if !revoked {
            // Revoked before (cannot happen: only this withdraws), so no
            // grace period ran above: wait for one before the entry goes.
            rcu::synchronize_rcu();
        }
        // Consumers waiting for room here learn that the device is gone (a
        // send to it now fails), and the references they left go with it.
        self.0.wake_waiting();
        if !entry.is_null() {
            // The grace period above let every lookup that read `entry` take its own reference.
            // SAFETY: From `Arc::into_raw` in `publish`, taken out of the device above: ours.
            let index_ref = unsafe { Arc::from_raw(entry.cast::<Core>()) };
            drop(index_ref);
        }
    }
}

/// The device type of devices that publish a capability: how a lookup
/// knows that a device's `ml_priv` holds one.
struct DeviceType(bindings::device_type);

// SAFETY: The type is immutable: a name and no callbacks.
unsafe impl Sync for DeviceType {}

static DEVICE_TYPE: DeviceType = DeviceType(bindings::device_type {
    name: c"peer-dma".as_ptr().cast(),
    // SAFETY: All-zero is a valid `device_type` (no callbacks, no groups).
    ..unsafe { core::mem::zeroed() }
});

/// Marks a new device as one that may publish a capability. Before its
/// registration.
///
/// # Safety
///
/// `dev` is a live device being set up, not yet registered.
/// `EBUSY` if the driver gave the device a type of its own.
///
/// The type shows in the device's uevents (`DEVTYPE=peer-dma`), as a bridge
/// or a VLAN device shows its own.
pub(crate) unsafe fn mark_capable(dev: *mut bindings::net_device) -> Result {
    // SAFETY: Guaranteed by the caller: the device is ours alone until it
    // is registered; `ml_priv` starts out null.
    unsafe {
        if !(*dev).dev.type_.is_null() {
            return Err(EBUSY);
        }
        (*dev).dev.type_ = &DEVICE_TYPE.0;
    }
    Ok(())
}

/// The device's `ml_priv` field, as an atomic.
///
/// # Safety
///
/// `dev` is live, and every access to its `ml_priv` goes through this.
unsafe fn ml_priv<'a>(dev: *mut bindings::net_device) -> &'a AtomicPtr<c_void> {
    // SAFETY: The field is aligned and valid (caller); accesses are atomic.
    unsafe { AtomicPtr::from_ptr(core::ptr::addr_of_mut!((*dev).ml_priv)) }
}

/// A device's capability, as a forwarding path holds it. Cheap to clone;
/// keeps only the shared core alive.
#[derive(Clone)]
pub struct CapRef(Arc<Core>);

impl CapRef {
    /// `dev`'s capability, if it has one now. Any context.
    pub fn lookup(dev: &NetDevice) -> Option<CapRef> {
        let raw = dev.as_raw();
        // SAFETY: `dev` is live (type invariant of `NetDevice`).
        if unsafe { (*raw).dev.type_ } != &DEVICE_TYPE.0 {
            return None;
        }
        let guard = rcu::read_lock();
        // SAFETY: A device of `DEVICE_TYPE`: its `ml_priv` is only accessed
        // through `ml_priv`.
        let entry = unsafe { ml_priv(raw) }.load(Ordering::Acquire);
        if entry.is_null() {
            return None;
        }
        // `withdraw` drops the entry only a grace period after taking it out of the device.
        // SAFETY: An `Arc<Core>` from `Arc::into_raw`, so live in this read section.
        let borrowed = unsafe { ArcBorrow::from_raw(entry.cast::<Core>()) };
        let core: Arc<Core> = borrowed.into();
        drop(guard);
        Some(CapRef(core))
    }

    /// Whether this is `dev`'s capability now (a withdrawn one is no
    /// device's, even if another device reuses the address).
    pub fn is(&self, dev: &NetDevice) -> bool {
        CapRef::lookup(dev).is_some_and(|c| c.same(self))
    }

    /// Whether the device still offers it (it is withdrawn before the device
    /// goes).
    pub fn is_live(&self) -> bool {
        self.0.with_ops(|_| ()).is_some()
    }

    /// Claims the device for `consumer`: from the next received frame on,
    /// the device delivers [`DevBuf`]s to it instead of skbs to the stack.
    /// `EBUSY` if another consumer holds it, `ENODEV` if withdrawn, `EINVAL`
    /// for a header copy of 0 or more than [`MAX_HEADER`] bytes. Process
    /// context.
    pub fn claim(&self, mode: HeaderMode, consumer: Arc<dyn RxConsumer>) -> Result<Claim> {
        if let HeaderMode::Copy(n) = mode {
            if n == 0 || usize::from(n) > MAX_HEADER {
                return Err(EINVAL);
            }
        }
        {
            let mut state = self.0.claim.lock();
            if state.is_some() {
                return Err(EBUSY);
            }
            // Told to the driver under the claim's lock, so that a claim and
            // the release of another reach it in the order they happened.
            if self.0.with_ops(|ops| ops.set_claimed(Some(mode))).is_some() {
                *state = Some(ClaimState { consumer, mode });
                return Ok(Claim { core: self.0.clone() });
            }
        }
        // Withdrawn: `consumer` was never stored, nothing delivers to it.
        Err(ENODEV)
    }

    /// The header mode of the current claim, if any.
    pub fn claimed_mode(&self) -> Option<HeaderMode> {
        self.0.claim.lock().as_ref().map(|s| s.mode)
    }

    /// Whether both name the same device's capability.
    pub fn same(&self, other: &CapRef) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// A consumer's hold on a device. Dropping it gives the device's frames back
/// to the stack and returns once no call into the consumer runs any longer,
/// whether or not the device was withdrawn meanwhile. It waits for an RCU
/// grace period: drop it in process context, never from the consumer's own
/// callbacks.
pub struct Claim {
    core: Arc<Core>,
}

impl Claim {
    /// The claimed device.
    pub fn device(&self) -> CapRef {
        CapRef(self.core.clone())
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        crate::task::might_sleep();
        let state = {
            let mut state = self.core.claim.lock();
            let taken = state.take();
            if taken.is_some() {
                self.core.with_ops(|ops| ops.set_claimed(None));
            }
            taken
        };
        if state.is_some() {
            // Deliveries that cloned the consumer have returned after this.
            rcu::synchronize_rcu();
        }
        drop(state);
    }
}

/// What a send refused gives back.
pub enum SendError {
    /// The egress has no transmit room now; the buffer is returned.
    Busy(DevBuf),
    /// The egress's memory is exhausted; the buffer is returned.
    NoMemory(DevBuf),
    /// The frame cannot go that way (a header longer than the frame or than
    /// [`MAX_HEADER`], a frame longer than the egress takes).
    Invalid(DevBuf),
    /// The ingress or the egress device is gone; the buffer was released.
    Gone,
}

impl SendError {
    fn refused(why: Refusal, buf: DevBuf) -> Self {
        match why {
            Refusal::Busy => SendError::Busy(buf),
            Refusal::NoMemory => SendError::NoMemory(buf),
            Refusal::Invalid => SendError::Invalid(buf),
        }
    }

    /// The buffer, if it came back.
    pub fn into_buf(self) -> Option<DevBuf> {
        match self {
            SendError::Busy(b) | SendError::NoMemory(b) | SendError::Invalid(b) => Some(b),
            SendError::Gone => None,
        }
    }
}

impl core::fmt::Debug for SendError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            SendError::Busy(_) => "Busy",
            SendError::NoMemory(_) => "NoMemory",
            SendError::Invalid(_) => "Invalid",
            SendError::Gone => "Gone",
        })
    }
}

/// A received frame in a device's memory. Its operations and its drop run
/// driver code that takes bottom-half locks: use it in process or softirq
/// context, not in hard interrupts or with interrupts off.
///
/// # Invariants
///
/// `slot` is `Some` except while an operation hands it to the driver. Until
/// the core is revoked it names a buffer of that device holding `len` frame
/// bytes that nothing else owns; dropping the handle releases it. After
/// revocation every operation fails and drop does nothing.
pub struct DevBuf {
    core: Arc<Core>,
    slot: Option<Slot>,
    len: u32,
}

impl DevBuf {
    /// The frame's length in bytes.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether the frame is empty (never, for a received frame).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The device whose memory holds the frame.
    pub fn device(&self) -> CapRef {
        CapRef(self.core.clone())
    }

    /// Whether the frame is in `cap`'s device (a send there is a self
    /// transfer).
    pub fn is_on(&self, cap: &CapRef) -> bool {
        Arc::ptr_eq(&self.core, &cap.0)
    }

    /// `ERANGE` unless `n` bytes at `off` lie inside the frame.
    fn check(&self, off: u32, n: usize) -> Result {
        let end = u64::from(off) + n as u64;
        if end > u64::from(self.len) { Err(ERANGE) } else { Ok(()) }
    }

    /// Reads `out.len()` bytes at `off` in place (PIO: the CPU waits for the
    /// bus). `ERANGE` outside the frame, `ENODEV` once the device is gone.
    pub fn read(&self, off: u32, out: &mut [u8]) -> Result {
        self.check(off, out.len())?;
        let slot = self.slot.as_ref().ok_or(ENODEV)?;
        self.core.with_ops(|ops| ops.pio_read(slot, off, out)).unwrap_or(Err(ENODEV))
    }

    /// One byte at `off`, in place.
    pub fn read_u8(&self, off: u32) -> Result<u8> {
        let mut b = [0; 1];
        self.read(off, &mut b)?;
        Ok(b[0])
    }

    /// A big-endian 16-bit field at `off`, in place.
    pub fn read_be16(&self, off: u32) -> Result<u16> {
        let mut b = [0; 2];
        self.read(off, &mut b)?;
        Ok(u16::from_be_bytes(b))
    }

    /// A big-endian 32-bit field at `off`, in place.
    pub fn read_be32(&self, off: u32) -> Result<u32> {
        let mut b = [0; 4];
        self.read(off, &mut b)?;
        Ok(u32::from_be_bytes(b))
    }

    /// Writes `bytes` at `off` in place (posted PIO writes).
    pub fn write(&mut self, off: u32, bytes: &[u8]) -> Result {
        self.check(off, bytes.len())?;
        let DevBuf { core, slot, .. } = self;
        let slot = slot.as_mut().ok_or(ENODEV)?;
        core.with_ops(|ops| ops.pio_write(slot, off, bytes)).unwrap_or(Err(ENODEV))
    }

    /// Sends the frame out of `egress`, after writing `header` over its
    /// start (one DMA) if given:
    ///
    /// - `egress` is this device: a pointer move to its transmit queue,
    ///   with no DMA of the frame;
    /// - another capable device: room is reserved in its memory now, and
    ///   this device's engine moves the frame there in one peer DMA, after
    ///   which `egress` transmits it.
    ///
    /// Any context but hard interrupts; never sleeps.
    pub fn send(self, header: Option<&[u8]>, egress: &CapRef) -> Result<(), SendError> {
        let header = match header {
            None => None,
            Some(h) if h.len() <= self.len as usize => match Header::new(h) {
                Ok(h) => Some(h),
                Err(_) => return Err(SendError::Invalid(self)),
            },
            Some(_) => return Err(SendError::Invalid(self)),
        };
        let own = Arc::ptr_eq(&self.core, &egress.0);
        let len = self.len;
        // A refusal for want of room registers this device's consumer to be
        // told when the device that refused has room (`RxConsumer::room`).
        self.hand_over(|me, ops, slot, guard| {
            if own {
                return retry_after_wait(me, me, slot, |slot| ops.transmit_own(slot, len, header.as_ref()))
                    .map_err(|(why, slot)| Handback::Refused(why, slot));
            }
            let Some(egress_ops) = egress.0.ops.try_access_with_guard(guard) else {
                // The egress is gone; the frame is released.
                return Err(Handback::Gone(Some(slot)));
            };
            let dst = match retry_after_wait(&egress.0, me, (), |()| egress_ops.reserve(len).map_err(|why| (why, ()))) {
                Ok(dst) => Reserved { core: egress.0.clone(), slot: Some(dst), len },
                Err((why, ())) => return Err(Handback::Refused(why, slot)),
            };
            // The ingress's own engine queue may be full too.
            retry_after_wait(me, me, PeerJob { src: slot, len, header, dst }, |job| ops.peer_transfer(job)).map_err(
                |(why, job)| {
                    // Dropping the reservation releases the egress's room.
                    let PeerJob { src, dst, .. } = job;
                    drop(dst);
                    Handback::Refused(why, src)
                },
            )
        })
    }

    /// Fallback: has the device DMA the whole frame into an skb, handed to
    /// the consumer's [`RxConsumer::skb_ready`] with `tag` by the device's
    /// poll (for a device that is not capable, say). Never sleeps.
    pub fn to_skb(self, tag: u64) -> Result<(), SendError> {
        self.into_host(Some(tag))
    }

    /// Fallback: has the device DMA the whole frame into an skb for the
    /// stack, as if it had not been claimed. Never sleeps.
    pub fn to_stack(self) -> Result<(), SendError> {
        self.into_host(None)
    }

    fn into_host(self, tag: Option<u64>) -> Result<(), SendError> {
        let len = self.len;
        self.hand_over(|_, ops, slot, _| ops.to_skb(slot, len, tag).map_err(|(why, slot)| Handback::Refused(why, slot)))
    }

    /// Hands the frame to the driver: runs `f` with the device's core, its
    /// operations and the slot, inside one RCU read section. `Gone`, with nothing to
    /// release, once the device was withdrawn (the driver reclaimed its
    /// memory); a slot `f` gives back returns to the handle.
    fn hand_over(
        mut self,
        f: impl FnOnce(&Arc<Core>, &dyn PeerDmaOps, Slot, &rcu::Guard) -> Result<(), Handback>,
    ) -> Result<(), SendError> {
        let core = self.core.clone();
        let guard = rcu::read_lock();
        let Some(ops) = core.ops.try_access_with_guard(&guard) else {
            self.slot = None;
            return Err(SendError::Gone);
        };
        let Some(slot) = self.slot.take() else { return Err(SendError::Gone) };
        match f(&core, &**ops, slot, &guard) {
            Ok(()) => Ok(()),
            Err(Handback::Refused(why, slot)) => {
                self.slot = Some(slot);
                Err(SendError::refused(why, self))
            }
            Err(Handback::Gone(slot)) => {
                // Dropping the handle releases what came back.
                self.slot = slot;
                Err(SendError::Gone)
            }
        }
    }
}

/// What a driver call gives back to [`DevBuf::hand_over`].
enum Handback {
    Refused(Refusal, Slot),
    Gone(Option<Slot>),
}

impl Drop for DevBuf {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            // Once revoked there is nothing to release.
            self.core.with_ops(|ops| ops.release(slot));
        }
    }
}

/// Room reserved in a destination device's memory for a peer transfer.
///
/// # Invariants
///
/// As for [`DevBuf`]: `slot` is `Some` until filled; dropping an unfilled
/// reservation releases it while the destination is live.
pub struct Reserved {
    core: Arc<Core>,
    slot: Option<Slot>,
    len: u32,
}

impl Reserved {
    /// Bytes reserved.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether nothing is reserved (never).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The peer transfer's destination side: `fill` writes the frame into
    /// the reserved room, then the destination transmits it, not before
    /// `from.ends_in_ns` from now. `ENODEV` if the destination is gone.
    pub fn fill_and_transmit(mut self, from: PeerSource, fill: &mut dyn FnMut(&mut [u8])) -> Result {
        let slot = self.slot.take().ok_or(ENODEV)?;
        let len = self.len;
        self.core.with_ops(|ops| ops.fill_and_transmit(slot, len, from, fill)).ok_or(ENODEV)
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.core.with_ops(|ops| ops.release(slot));
        }
    }
}
