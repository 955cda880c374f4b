// SPDX-License-Identifier: GPL-2.0

//! Protocol handlers: receive every frame of one ethertype
//! (`struct packet_type`, `dev_add_pack`).
//!
//! This is how a personality claims its frame types on an ordinary device
//! without touching the driver: the stack hands each matching frame to the
//! handler after the taps and before (or instead of) the other protocols.
//!
//! C header: [`include/linux/netdevice.h`](srctree/include/linux/netdevice.h)

use super::{device::NetDevice, ethernet::EtherType, skb::SkBuff};
use crate::{bindings, prelude::*, sync::aref::ARef, types::Opaque};

/// Receives frames of a registered ethertype.
pub trait PacketHandler: Send + Sync {
    /// A frame arrived on `dev`. `skb` starts after the Ethernet header
    /// ([`SkBuff::eth_hdr`] gives the header) and may be shared with other
    /// receivers: treat it as read-only unless made writable.
    ///
    /// Runs in softirq context: must not sleep. An unbound handler receives
    /// frames from devices in every network namespace.
    fn receive(&self, skb: SkBuff, dev: &NetDevice);
}

/// A registered protocol handler, removed on drop.
///
/// A handler bound to a device holds a reference to it: the owner must drop
/// the registration when the device is unregistered (see
/// [`super::notifier`]), or the unregistration cannot complete.
///
/// # Invariants
///
/// `pt` is registered with `dev_add_pack` from successful initialisation
/// until drop, its `func` is [`Self::receive_callback`], and its `dev` is
/// `dev` (or null).
#[pin_data(PinnedDrop)]
pub struct Registration<T: PacketHandler> {
    handler: T,
    dev: Option<ARef<NetDevice>>,
    #[pin]
    pt: Opaque<bindings::packet_type>,
}

// SAFETY: The handler is `Send + Sync` and the packet type is only touched by
// the stack under its own locking.
unsafe impl<T: PacketHandler> Send for Registration<T> {}
// SAFETY: `&Registration` only gives access to `&T`, which is `Sync`.
unsafe impl<T: PacketHandler> Sync for Registration<T> {}

impl<T: PacketHandler> Registration<T> {
    /// Registers `handler` for frames of `ethertype`, on `dev` only or on
    /// every device.
    pub fn new(
        ethertype: EtherType,
        dev: Option<ARef<NetDevice>>,
        handler: T,
    ) -> impl PinInit<Self, Error> {
        let raw_dev = dev.as_ref().map_or(core::ptr::null_mut(), |d| d.as_raw());
        try_pin_init!(Self {
            handler,
            dev,
            pt <- Opaque::try_ffi_init(move |slot: *mut bindings::packet_type| {
                // A zeroed packet type with type, device and function set.
                // SAFETY: `slot` is valid for writes and exclusively ours here.
                unsafe {
                    slot.write(core::mem::zeroed());
                    (*slot).type_ = ethertype.to_be();
                    (*slot).dev = raw_dev;
                    (*slot).func = Some(Self::receive_callback);
                }
                // `raw_dev`, if any, is kept alive by the `dev` field above.
                // SAFETY: `slot` is pinned in `Self` and removed in `PinnedDrop`.
                unsafe { bindings::dev_add_pack(slot) };
                Ok::<(), Error>(())
            }),
        })
    }

    /// The handler.
    pub fn handler(&self) -> &T {
        &self.handler
    }

    /// Called by the stack for each matching frame.
    ///
    /// # Safety
    ///
    /// `pt` must be the `pt` field of a live `Registration<T>`, `skb` a
    /// buffer whose reference is passed to us, `dev` its live device.
    unsafe extern "C" fn receive_callback(
        skb: *mut bindings::sk_buff,
        dev: *mut bindings::net_device,
        pt: *mut bindings::packet_type,
        _orig_dev: *mut bindings::net_device,
    ) -> crate::ffi::c_int {
        // SAFETY: `pt` lies in a live `Registration<T>` (the `Opaque` wrapper
        // is transparent); removal waits for running callbacks.
        let this = unsafe { &*crate::container_of!(pt.cast::<Opaque<bindings::packet_type>>(), Self, pt) };
        // SAFETY: The stack passes one reference to the buffer to each handler.
        let skb = unsafe { SkBuff::from_raw(skb) };
        // SAFETY: The device is live while its frames are being received.
        let dev = unsafe { NetDevice::from_raw(dev) };
        this.handler.receive(skb, dev);
        bindings::NET_RX_SUCCESS as crate::ffi::c_int
    }
}

#[pinned_drop]
impl<T: PacketHandler> PinnedDrop for Registration<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: `pt` is registered (type invariant); `dev_remove_pack` waits
        // for running callbacks, so handler and device can be dropped after it.
        unsafe { bindings::dev_remove_pack(self.pt.get()) };
    }
}
