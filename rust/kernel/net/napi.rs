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
    skb::SkBuff,
};
use crate::{bindings, prelude::*, types::Opaque};
use core::{
    marker::PhantomData,
    sync::atomic::{AtomicBool, Ordering},
};

/// A driver's NAPI poll function.
pub trait NapiPoll: Driver {
    /// Process up to `budget` received frames and return how many were
    /// processed. If fewer than `budget`, call [`Napi::complete_done`]
    /// before returning. Runs in softirq context: must not sleep.
    fn poll(dev: &Device<Self>, napi: &Napi<Self>, budget: i32) -> i32;
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
#[pin_data(PinnedDrop)]
pub struct Napi<T: NapiPoll> {
    #[pin]
    inner: Opaque<bindings::napi_struct>,
    added: AtomicBool,
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
    pub fn enable(&self) {
        if !self.is_added() {
            return;
        }
        // SAFETY: The context was added (type invariant); process context.
        unsafe { bindings::napi_enable(self.raw()) };
    }

    /// Waits for a running poll to finish and prevents further scheduling
    /// (typically in [`Driver::stop`]). Sleeps.
    pub fn disable(&self) {
        if !self.is_added() {
            return;
        }
        // SAFETY: The context was added (type invariant); process context.
        unsafe { bindings::napi_disable(self.raw()) };
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

    /// Reports that a poll did `work` frames, fewer than its budget, and is
    /// done. Returns false if the poll must not re-enable interrupts.
    pub fn complete_done(&self, work: i32) -> bool {
        if !self.is_added() {
            return false;
        }
        // SAFETY: Called from our poll function (documented), on an added
        // context.
        unsafe { bindings::napi_complete_done(self.raw(), work) }
    }

    /// Hands a received frame (starting with its Ethernet header) to the
    /// stack from the poll function, with GRO (`napi_gro_receive`). Frames
    /// shorter than a header are dropped with `EINVAL`.
    pub fn receive(&self, dev: &Device<T>, skb: SkBuff) -> Result {
        if !self.is_added() {
            return Err(EINVAL);
        }
        let skb = dev.prepare_rx(skb)?;
        // SAFETY: Called from our poll function (softirq) on an added
        // context; the reference to the prepared frame is passed.
        unsafe { bindings::napi_gro_receive(self.raw(), skb.into_raw()) };
        Ok(())
    }
}

#[pinned_drop]
impl<T: NapiPoll> PinnedDrop for Napi<T> {
    fn drop(self: Pin<&mut Self>) {
        if self.is_added() {
            // SAFETY: The context was added (type invariant) and is removed
            // once; `netif_napi_del` waits for a running poll.
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
    T::poll(dev, this, budget)
}
