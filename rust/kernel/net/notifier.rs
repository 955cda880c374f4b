// SPDX-License-Identifier: GPL-2.0

//! Net device notifications: learn when a device comes, goes, or changes.
//!
//! Whoever holds an [`ARef<NetDevice>`](super::device::NetDevice) must drop
//! it when the device is unregistered, or the unregistration waits forever.
//! A [`Registration`] delivers [`Event::Unregister`] (and the other events)
//! to its [`EventHandler`] in time to do so.
//!
//! C header: [`include/linux/netdevice.h`](srctree/include/linux/netdevice.h)

use super::{device::NetDevice, rtnl::Rtnl};
use crate::{bindings, error::to_result, prelude::*, types::Opaque};

/// What happened to a device (`enum netdev_cmd`, the events users act on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The device was registered (also replayed for every existing device
    /// when a [`Registration`] is made).
    Register,
    /// The device is being unregistered: drop every reference to it now.
    Unregister,
    /// The device was brought up.
    Up,
    /// The device is about to go down.
    GoingDown,
    /// The device went down.
    Down,
    /// The MTU changed.
    ChangeMtu,
    /// The hardware address changed.
    ChangeAddr,
    /// The name changed.
    ChangeName,
    /// Any other notification, by its `netdev_cmd` value.
    Other(u64),
}

impl Event {
    fn from_raw(cmd: u64) -> Event {
        // `netdev_cmd` values are small; compare in the callback's width.
        let is = |c: bindings::netdev_cmd| cmd == u64::from(c);
        if is(bindings::netdev_cmd_NETDEV_REGISTER) {
            Event::Register
        } else if is(bindings::netdev_cmd_NETDEV_UNREGISTER) {
            Event::Unregister
        } else if is(bindings::netdev_cmd_NETDEV_UP) {
            Event::Up
        } else if is(bindings::netdev_cmd_NETDEV_GOING_DOWN) {
            Event::GoingDown
        } else if is(bindings::netdev_cmd_NETDEV_DOWN) {
            Event::Down
        } else if is(bindings::netdev_cmd_NETDEV_CHANGEMTU) {
            Event::ChangeMtu
        } else if is(bindings::netdev_cmd_NETDEV_CHANGEADDR) {
            Event::ChangeAddr
        } else if is(bindings::netdev_cmd_NETDEV_CHANGENAME) {
            Event::ChangeName
        } else {
            Event::Other(cmd)
        }
    }
}

/// Receives device events.
pub trait EventHandler: Sync {
    /// `event` happened to `dev`. Runs in process context with RTNL held
    /// (`rtnl` proves it): it may sleep, but must not take RTNL again.
    fn event(&self, dev: &NetDevice, event: Event, rtnl: &Rtnl);
}

/// A registered net device notifier, unregistered on drop.
///
/// Registering replays [`Event::Register`] (and [`Event::Up`]) for every
/// existing device; unregistering replays [`Event::Unregister`] for every
/// device, so a handler sees each device it was told about go away.
///
/// # Invariants
///
/// `nb` is registered with the netdevice notifier chain from successful
/// initialisation until drop, and its `notifier_call` is
/// [`Self::callback`], which finds `handler` through `nb`'s position in `Self`.
#[pin_data(PinnedDrop)]
pub struct Registration<T: EventHandler> {
    handler: T,
    #[pin]
    nb: Opaque<bindings::notifier_block>,
}

// SAFETY: The handler is `Sync` and the notifier block is only touched by the
// notifier chain under its own locking.
unsafe impl<T: EventHandler + Send> Send for Registration<T> {}
// SAFETY: `&Registration` only gives access to `&T`, which is `Sync`.
unsafe impl<T: EventHandler> Sync for Registration<T> {}

impl<T: EventHandler> Registration<T> {
    /// Registers `handler` for events of every device in every namespace.
    ///
    /// Process context; must not be called with RTNL held.
    pub fn new(handler: T) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            // Initialised first: registration replays events to it at once.
            handler,
            nb <- Opaque::try_ffi_init(|slot: *mut bindings::notifier_block| {
                // SAFETY: `slot` is valid for writes; a zeroed block with only
                // the callback set is a valid, unlinked notifier block.
                unsafe {
                    slot.write(core::mem::zeroed());
                    (*slot).notifier_call = Some(Self::callback);
                }
                // SAFETY: `slot` is a valid block that is pinned inside `Self`
                // and stays registered until `PinnedDrop` unregisters it.
                to_result(unsafe { bindings::register_netdevice_notifier(slot) })
            }),
        })
    }

    /// The handler.
    pub fn handler(&self) -> &T {
        &self.handler
    }

    /// Called by the notifier chain.
    ///
    /// # Safety
    ///
    /// `nb` must be the `nb` field of a live `Registration<T>` and `data` a
    /// valid `struct netdev_notifier_info` for a live device; the chain calls
    /// it with RTNL held, as it does for every netdevice notifier.
    unsafe extern "C" fn callback(
        nb: *mut bindings::notifier_block,
        action: crate::ffi::c_ulong,
        data: *mut crate::ffi::c_void,
    ) -> crate::ffi::c_int {
        // SAFETY: By the function's requirements `nb` lies in a live
        // `Registration<T>` (the `Opaque` wrapper is transparent).
        let this = unsafe { &*crate::container_of!(nb.cast::<Opaque<bindings::notifier_block>>(), Self, nb) };
        // SAFETY: `data` is a valid notifier info whose device is live for the
        // duration of the call.
        let dev = unsafe { NetDevice::from_raw(bindings::netdev_notifier_info_to_dev(data.cast())) };
        // SAFETY: Netdevice notifiers run with RTNL held for the whole call.
        let rtnl = unsafe { Rtnl::assume_held() };
        this.handler.event(dev, Event::from_raw(action as u64), &rtnl);
        bindings::NOTIFY_DONE as crate::ffi::c_int
    }
}

#[pinned_drop]
impl<T: EventHandler> PinnedDrop for Registration<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: By the type invariant `nb` is registered; after this call
        // returns the chain no longer calls it, so `handler` may be dropped.
        unsafe { bindings::unregister_netdevice_notifier(self.nb.get()) };
    }
}
