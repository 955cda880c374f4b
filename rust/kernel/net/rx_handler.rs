// SPDX-License-Identifier: GPL-2.0

//! Receive handlers: see every frame a device receives before the protocol
//! stack does (`netdev_rx_handler_register`), and keep the ones you want.
//!
//! A device has at most one receive handler (bridges, bonds and macvlans use
//! the same hook), so registering can fail with `EBUSY`. Ownership of each
//! frame is explicit: the handler returns [`RxVerdict::Pass`] with the buffer
//! to give it back to the stack, or [`RxVerdict::Consumed`] having kept,
//! forwarded or freed it.
//!
//! C header: [`include/linux/netdevice.h`](srctree/include/linux/netdevice.h)

use super::{device::NetDevice, rtnl::Rtnl, skb::SkBuff};
use crate::{
    bindings,
    error::{to_result, Result},
    sync::{aref::ARef, Arc},
    types::ForeignOwnable,
};

/// What a receive handler did with a frame.
pub enum RxVerdict {
    /// The handler took the frame (kept, forwarded or freed it).
    Consumed,
    /// The stack should process this frame as usual: the one received, or
    /// one made from it (an unshared clone, say); the stack continues with
    /// whichever it gets. A buffer without a device (allocated afresh) is
    /// dropped instead, as the stack would dereference its device.
    Pass(SkBuff),
}

/// Sees every frame received on a device.
pub trait RxHandler: Send + Sync + 'static {
    /// A frame arrived on `dev`; `skb` starts after the Ethernet header. Runs
    /// in softirq context: must not sleep. The buffer may be shared with
    /// packet taps, so it comes as [`SkBuff<Shared>`](super::skb::Shared):
    /// unshare it before changing its header, make it writable before
    /// changing its data.
    fn receive(&self, skb: SkBuff, dev: &NetDevice) -> RxVerdict;
}

/// A receive handler registered on one device.
///
/// Unregistering needs RTNL: [`Self::unregister`] uses the caller's (as in a
/// device notifier, where the handler must be removed on
/// [`Event::Unregister`](super::notifier::Event::Unregister)); dropping a
/// still-registered handler takes RTNL itself.
///
/// # Invariants
///
/// While `registered`, `dev`'s rx_handler is [`rx_handler_callback::<T>`] and
/// its rx_handler_data is a pointer obtained from `Arc::into_foreign` of a
/// clone of `handler`, owned by the registration.
pub struct Registration<T: RxHandler> {
    dev: ARef<NetDevice>,
    handler: Arc<T>,
    registered: bool,
}

impl<T: RxHandler> Registration<T> {
    /// Registers `handler` on `dev`. Fails with `EBUSY` if the device has a
    /// receive handler already.
    pub fn register(rtnl: &Rtnl, dev: ARef<NetDevice>, handler: Arc<T>) -> Result<Self> {
        let _ = rtnl;
        let data = handler.clone().into_foreign();
        // SAFETY: RTNL is held (`rtnl`), `dev` is live, and `data` stays valid
        // until unregistration, which waits for running callbacks.
        let rc = unsafe {
            bindings::netdev_rx_handler_register(dev.as_raw(), Some(rx_handler_callback::<T>), data.cast())
        };
        if let Err(e) = to_result(rc) {
            // SAFETY: Registration failed, so `data` was not published; take
            // the reference back.
            drop(unsafe { Arc::<T>::from_foreign(data) });
            return Err(e);
        }
        // INVARIANT: Registered with the data just handed over.
        Ok(Registration { dev, handler, registered: true })
    }

    /// The device.
    pub fn device(&self) -> &NetDevice {
        &self.dev
    }

    /// The handler.
    pub fn handler(&self) -> &Arc<T> {
        &self.handler
    }

    fn unregister_locked(&mut self) {
        if !self.registered {
            return;
        }
        let dev = self.dev.as_raw();
        // SAFETY: RTNL is held by every caller of this function, and the
        // handler is registered by the type invariant.
        let data = unsafe {
            let data = (*dev).rx_handler_data;
            bindings::netdev_rx_handler_unregister(dev);
            data
        };
        self.registered = false;
        // SAFETY: `netdev_rx_handler_unregister` waited for running handlers,
        // so nothing uses `data` any more; it came from `into_foreign`.
        drop(unsafe { Arc::<T>::from_foreign(data.cast()) });
    }

    /// Unregisters under the caller's RTNL (for example from a notifier).
    pub fn unregister(mut self, rtnl: &Rtnl) {
        let _ = rtnl;
        self.unregister_locked();
    }
}

impl<T: RxHandler> Drop for Registration<T> {
    fn drop(&mut self) {
        if self.registered {
            let _rtnl = super::rtnl::lock();
            self.unregister_locked();
        }
    }
}

/// Called by the stack for each frame received on a device with a handler.
///
/// # Safety
///
/// `pskb` points at a buffer reference passed to us; its device's
/// rx_handler_data was set by [`Registration::register`] for `T`.
unsafe extern "C" fn rx_handler_callback<T: RxHandler>(
    pskb: *mut *mut bindings::sk_buff,
) -> bindings::rx_handler_result_t {
    // SAFETY: `pskb` points at a valid buffer pointer whose reference we get.
    let raw = unsafe { *pskb };
    // SAFETY: The buffer's device is live while it is being received.
    let dev_raw = unsafe { bindings::polynic_skb_dev(raw) };
    // SAFETY: As above: the device is live for the whole call.
    let dev = unsafe { NetDevice::from_raw(dev_raw) };
    // SAFETY: The handler runs under RCU with the data published by
    // `register`; `borrow` does not take ownership of it.
    let handler = unsafe { <Arc<T> as ForeignOwnable>::borrow(bindings::polynic_rx_handler_data(raw).cast()) };
    // SAFETY: We own the reference the stack passed.
    let skb = unsafe { SkBuff::from_raw(raw) };
    match handler.receive(skb, dev) {
        RxVerdict::Consumed => bindings::rx_handler_result_RX_HANDLER_CONSUMED,
        // The stack goes on to dereference the buffer's device. Only the device
        // being received on is known to be live here: a buffer with no device
        // (made from scratch) or another one's (kept from an earlier frame,
        // whose device may since have been freed) cannot be passed on.
        // SAFETY: `skb` is a valid buffer we own.
        RxVerdict::Pass(skb) if unsafe { bindings::polynic_skb_dev(skb.as_raw()) } != dev_raw => {
            drop(skb);
            bindings::rx_handler_result_RX_HANDLER_CONSUMED
        }
        RxVerdict::Pass(skb) => {
            // The stack continues with this buffer, on the device it arrived on.
            // SAFETY: `pskb` is valid for writes.
            unsafe { *pskb = skb.into_raw() };
            bindings::rx_handler_result_RX_HANDLER_PASS
        }
    }
}
