// SPDX-License-Identifier: GPL-2.0

//! NAPI: receive processing in softirq context, in batches, scheduled by the
//! driver (`struct napi_struct`).
//!
//! A [`Napi`] lives in the driver's per-device state (see
//! [`super::driver`]), so it is deleted before the device is freed. Its
//! poll function is the driver's [`NapiPoll::poll`].
//!
//! C header: [`include/linux/netdevice.h`](srctree/include/linux/netdevice.h)

use super::{
    driver::{Device, Driver},
    skb::{SkBuff, Writable},
};
use crate::{bindings, prelude::*, sync::Mutex, types::Opaque};
use core::{
    marker::PhantomData,
    sync::atomic::{AtomicBool, Ordering},
};

/// A driver's NAPI poll function.
pub trait NapiPoll: Driver {
    /// Process up to `budget` received frames, handing them to the stack
    /// with [`Poll::receive`], and return how many were processed. If fewer
    /// than `budget`, call [`Poll::complete_done`] before returning. Runs in
    /// softirq context: must not sleep.
    fn poll(dev: &Device<Self>, poll: &mut Poll<'_, Self>, budget: i32) -> i32;
}

/// What only a running poll of one NAPI context may do: hand frames to GRO
/// and report the poll done. The core makes one for each call of
/// [`NapiPoll::poll`]; it cannot be made or kept elsewhere, so these
/// operations cannot run outside their poll.
pub struct Poll<'a, T: NapiPoll> {
    napi: &'a Napi<T>,
    dev: &'a Device<T>,
    budget: i32,
    completed: bool,
}

impl<T: NapiPoll> Poll<'_, T> {
    /// The context being polled (to schedule it again, for example).
    pub fn napi(&self) -> &Napi<T> {
        self.napi
    }

    /// Hands a received frame (starting with its Ethernet header) to the
    /// stack, with GRO (`napi_gro_receive`). GRO may move the frame's page
    /// fragments and steal its head into another frame, so the frame must be
    /// writable: the only reference to a data area shared with no clone
    /// ([`SkBuff::into_writable`] makes one). Frames shorter than a header
    /// are dropped with `EINVAL`; a poll with a zero budget (netpoll) may
    /// not receive at all (`EBUSY`, the frame is dropped).
    pub fn receive(&mut self, skb: SkBuff<Writable>) -> Result {
        if self.budget <= 0 {
            return Err(EBUSY);
        }
        let skb = self.dev.prepare_rx(skb)?;
        // A `Poll` exists only inside this context's poll, and the frame was
        // `Writable`, so GRO may take its data apart.
        // SAFETY: GRO state is ours here; the frame's reference is passed.
        unsafe { bindings::napi_gro_receive(self.napi.raw(), skb.into_raw()) };
        Ok(())
    }

    /// Reports that the poll did `work` frames, fewer than its budget, and
    /// is done (once per poll; later calls do nothing and return false).
    /// Returns false if the poll must not re-enable interrupts.
    pub fn complete_done(&mut self, work: i32) -> bool {
        // A zero-budget (netpoll) poll must not complete the context.
        if self.completed || self.budget <= 0 {
            return false;
        }
        self.completed = true;
        // SAFETY: We are inside this context's poll, which has not yet
        // completed (checked above).
        unsafe { bindings::napi_complete_done(self.napi.raw(), work) }
    }
}


/// A NAPI context of a device driven by `T`.
///
/// Created empty inside the driver state, then added to the device with
/// [`Napi::add`] from [`Driver::setup`] (the device does not exist yet while
/// its state is being initialised). Until added, scheduling does nothing.
///
/// # Invariants
///
/// Once `added` is set, `inner` has been added to a device of `T` with
/// poll function [`poll_callback::<T>`] and stays added until drop.
/// `enabled` holds `true` exactly when `inner` is enabled; transitions
/// happen under its lock. (`napi_enable` twice is a `BUG_ON` and
/// `napi_disable` twice waits forever, so the abstraction keeps the state
/// and makes each transition happen once.)
#[pin_data(PinnedDrop)]
pub struct Napi<T: NapiPoll> {
    #[pin]
    inner: Opaque<bindings::napi_struct>,
    added: AtomicBool,
    #[pin]
    enabled: Mutex<bool>,
    /// Mirrors `enabled`, for reading from any context.
    is_enabled: AtomicBool,
    _p: PhantomData<T>,
}

// SAFETY: NAPI state is synchronised by the core's atomic state bits.
unsafe impl<T: NapiPoll> Send for Napi<T> {}
// SAFETY: See `Send`.
unsafe impl<T: NapiPoll> Sync for Napi<T> {}

impl<T: NapiPoll> Napi<T> {
    /// An empty context, to be [added](Self::add) to the device.
    pub fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            inner <- Opaque::ffi_init(|slot: *mut bindings::napi_struct| {
                // SAFETY: `slot` is valid for writes; zeroed is the state
                // `netif_napi_add` expects.
                unsafe { slot.write(core::mem::zeroed()) };
            }),
            added: AtomicBool::new(false),
            enabled <- {
                let (name, key) = crate::sync::generic_lock_class!("net::napi::Napi::enabled");
                Mutex::new(false, name, key)
            },
            is_enabled: AtomicBool::new(false),
            _p: PhantomData,
        })
    }

    /// Adds the context to `dev` (once; later calls do nothing). It starts
    /// disabled. Process context, RTNL not needed.
    pub fn add(&self, dev: &Device<T>) {
        if self.added.swap(true, Ordering::AcqRel) {
            return;
        }
        // The context is pinned in driver state and deleted in `PinnedDrop`.
        // SAFETY: `self` stays pinned while added; `dev` is a live device of `T`.
        unsafe { bindings::netif_napi_add(dev.as_raw(), self.raw(), Some(poll_callback::<T>)) };
    }

    fn is_added(&self) -> bool {
        self.added.load(Ordering::Acquire)
    }

    fn raw(&self) -> *mut bindings::napi_struct {
        self.inner.get()
    }

    /// Allows the context to be scheduled (typically in [`Driver::open`]).
    /// Fails with `EINVAL` before [`Napi::add`] or outside process context
    /// (it sleeps), and `EBUSY` if it is already enabled.
    pub fn enable(&self) -> Result {
        if !self.is_added() || in_atomic_section() {
            return Err(EINVAL);
        }
        let mut enabled = self.enabled.lock();
        if *enabled {
            return Err(EBUSY);
        }
        // SAFETY: The context was added (type invariant) and is disabled
        // (state under its lock, held); process context.
        unsafe { bindings::napi_enable(self.raw()) };
        *enabled = true;
        self.is_enabled.store(true, Ordering::Release);
        Ok(())
    }

    /// Waits for a running poll to finish and prevents further scheduling
    /// (typically in [`Driver::stop`]); returns whether it was enabled (a
    /// context that is not enabled is left alone). Sleeps, so outside
    /// process context (in particular from the poll itself, which it would
    /// wait for forever) it does nothing and returns false.
    pub fn disable(&self) -> bool {
        if in_atomic_section() {
            crate::pr_warn_once!("napi: disable called where it cannot sleep; ignored\n");
            return false;
        }
        let mut enabled = self.enabled.lock();
        if !*enabled {
            return false;
        }
        // The poll does not take this lock, so waiting here cannot deadlock.
        // SAFETY: Added and enabled (state under its lock); process context.
        unsafe { bindings::napi_disable(self.raw()) };
        *enabled = false;
        self.is_enabled.store(false, Ordering::Release);
        true
    }

    /// Whether the context is enabled now.
    pub fn is_enabled(&self) -> bool {
        self.is_enabled.load(Ordering::Acquire)
    }

    /// Schedules a poll, unless one is already pending or the context is
    /// disabled; returns whether it scheduled one. Any context.
    pub fn schedule(&self) -> bool {
        if !self.is_added() {
            return false;
        }
        // SAFETY: The context was added (type invariant).
        unsafe { bindings::napi_schedule(self.raw()) }
    }
}

/// Whether the caller runs where `napi_enable` and `napi_disable`, which
/// sleep, may not run (a poll runs with bottom halves disabled, also when
/// threaded).
fn in_atomic_section() -> bool {
    crate::sync::context::in_interrupt_or_irqs_off()
}

#[pinned_drop]
impl<T: NapiPoll> PinnedDrop for Napi<T> {
    fn drop(self: Pin<&mut Self>) {
        if self.is_added() {
            // Deleting an enabled context is not allowed; a driver that did not
            // disable it in `stop` gets it disabled here. Process context:
            // drop runs when the device's state is freed.
            self.disable();
            // SAFETY: The context was added (type invariant), is disabled, and
            // is removed once; `netif_napi_del` waits for a running poll.
            unsafe { bindings::netif_napi_del(self.inner.get()) };
        }
    }
}

/// Called by the core to poll.
///
/// # Safety
///
/// `napi` is the `inner` of a live `Napi<T>` added to a device of `T`.
unsafe extern "C" fn poll_callback<T: NapiPoll>(
    napi: *mut bindings::napi_struct,
    budget: crate::ffi::c_int,
) -> crate::ffi::c_int {
    // SAFETY: `napi` is the `inner` field of a live `Napi<T>` (the `Opaque`
    // wrapper is transparent).
    let this = unsafe { &*crate::container_of!(napi.cast::<Opaque<bindings::napi_struct>>(), Napi<T>, inner) };
    // SAFETY: The context's device is a live device of `T` while it polls.
    let dev = unsafe { Device::<T>::from_raw((*napi).dev) };
    let mut poll = Poll { napi: this, dev, budget, completed: false };
    let work = T::poll(dev, &mut poll, budget).clamp(0, budget.max(0));
    // The core keeps owning the context after a poll that used its whole
    // budget; one that completed the context gave it up, and reporting the
    // whole budget then would put it on the poll list twice.
    if poll.completed && work >= budget {
        (budget - 1).max(0)
    } else {
        work
    }
}
