// SPDX-License-Identifier: GPL-2.0

//! Net device drivers: register a `net_device` whose operations are Rust.
//!
//! A driver implements [`Driver`] for its per-device state `T`, which lives
//! pinned in the device's private area for the device's whole life. The
//! [`Registration`] allocates and registers the device and, on drop,
//! unregisters it (which stops it first), drops `T` and frees the device, in
//! that order, so that nothing in `T` (a [`Napi`](super::napi::Napi), a
//! queue of buffers) outlives the device or is dropped while the stack can
//! still call in.
//!
//! C header: [`include/linux/netdevice.h`](srctree/include/linux/netdevice.h)

use super::{
    device::NetDevice,
    rtnl::Rtnl,
    skb::{Exclusive, Private, Shared, SkBuff},
};
use crate::{
    bindings,
    error::{code::*, from_result, to_result, Result},
    prelude::*,
    str::CStrExt as _,
    sync::aref::ARef,
};
use core::{marker::PhantomData, ptr::NonNull};

/// Counters a driver reports (the common fields of `rtnl_link_stats64`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Received frames dropped.
    pub rx_dropped: u64,
    /// Frames dropped instead of sent.
    pub tx_dropped: u64,
}

/// Ties a value to one call of [`Driver::start_xmit`]: invariant in `'a`,
/// and the method is generic over `'a`, so the value cannot be kept past
/// the call or returned from another one.
type Brand<'a> = PhantomData<fn(&'a ()) -> &'a ()>;

/// The buffer the stack hands to one call of [`Driver::start_xmit`].
///
/// It may be shared (devices set up with `ether_setup` accept buffers that
/// senders such as pktgen keep referencing, `IFF_TX_SKB_SHARING`), so it is
/// a [`SkBuff<Shared>`]. The driver either takes it ([`XmitSkb::into_skb`],
/// then returns [`TxVerdict::Done`]) or gives this very buffer back for the
/// stack to requeue ([`XmitSkb::requeue`]); no other buffer can be given
/// back, because the stack requeues the pointer it passed in.
pub struct XmitSkb<'a> {
    skb: SkBuff<Shared>,
    _brand: Brand<'a>,
}

impl<'a> XmitSkb<'a> {
    /// Takes the buffer: the driver sends, queues or drops it.
    pub fn into_skb(self) -> SkBuff<Shared> {
        self.skb
    }

    /// Gives the buffer back untouched; the driver must have stopped its
    /// queue ([`Device::stop_queue`]), and the stack retries the buffer
    /// after the queue is woken.
    pub fn requeue(self) -> TxVerdict<'a> {
        TxVerdict::Busy(Requeue { skb: self.skb.into_raw(), _brand: PhantomData })
    }
}

impl core::ops::Deref for XmitSkb<'_> {
    type Target = SkBuff<Shared>;

    fn deref(&self) -> &SkBuff<Shared> {
        &self.skb
    }
}

/// The buffer of this call of [`Driver::start_xmit`], given back (made only
/// by [`XmitSkb::requeue`]).
pub struct Requeue<'a> {
    skb: *mut bindings::sk_buff,
    _brand: Brand<'a>,
}

/// What [`Driver::start_xmit`] did with its buffer.
pub enum TxVerdict<'a> {
    /// The driver took the buffer (sent, queued or dropped it).
    Done,
    /// The driver cannot take the buffer now and has stopped its queue; the
    /// stack keeps the buffer and retries after the queue is woken.
    Busy(Requeue<'a>),
}

/// The operations of a Rust net device driver, implemented by its
/// per-device state.
#[vtable]
pub trait Driver: Send + Sync + Sized + 'static {
    /// The state is initialised in the new device and the device is about
    /// to be registered: add NAPI contexts (process context).
    fn setup(dev: &Device<Self>) -> Result {
        let _ = dev;
        Ok(())
    }

    /// The device is being brought up (RTNL held, process context).
    fn open(dev: &Device<Self>) -> Result {
        let _ = dev;
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// The device is being brought down (RTNL held, process context).
    fn stop(dev: &Device<Self>) -> Result {
        let _ = dev;
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Send `skb`, which starts with the link-layer header and may be shared
    /// (see [`XmitSkb`]). Runs with bottom halves disabled and interrupts
    /// enabled (the overlay keeps netpoll, which calls it with interrupts
    /// off, away from Rust drivers), under the transmit queue's lock: must
    /// not sleep.
    fn start_xmit<'a>(dev: &Device<Self>, skb: XmitSkb<'a>) -> TxVerdict<'a>;

    /// Current counters. Runs under RCU: must not sleep.
    fn stats(dev: &Device<Self>) -> Stats {
        let _ = dev;
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// The largest MTU the device takes (`ip link set DEV mtu N` refuses
    /// more); Ethernet's 1500 unless the driver says otherwise.
    const MAX_MTU: u32 = super::ethernet::DATA_LEN as u32;

    /// What the device does for the stack (on at registration; the user may
    /// turn each off with `ethtool -K`, so check [`NetDevice::has_features`]
    /// per frame). None unless the driver says otherwise.
    const FEATURES: Features = Features::NONE;
}

/// Offloads a device offers the stack (`netdev_features_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features(u64);

impl Features {
    /// None.
    pub const NONE: Features = Features(0);
    /// Frames may come in pieces (page fragments) to transmit.
    pub const SG: Features = Features(1 << bindings::NETIF_F_SG_BIT);
    /// The device computes the checksum the stack leaves to it
    /// ([`SkBuff::checksum_request`](super::skb::SkBuff::checksum_request)).
    pub const HW_CSUM: Features = Features(1 << bindings::NETIF_F_HW_CSUM_BIT);
    /// The device sums received frames for the stack
    /// ([`SkBuff::set_checksum_complete`](super::skb::SkBuff::set_checksum_complete)).
    pub const RXCSUM: Features = Features(1 << bindings::NETIF_F_RXCSUM_BIT);

    /// Both sets.
    pub const fn union(self, other: Features) -> Features {
        Features(self.0 | other.0)
    }

    /// Whether every feature of `other` is in this set.
    pub const fn contains(self, other: Features) -> bool {
        self.0 & other.0 == other.0
    }
}

/// A net device driven by [`Driver`] `T`, whose private area holds the `T`.
///
/// # Invariants
///
/// The device was allocated by [`Registration::register`] for `T`: its
/// private area holds an initialised, pinned `T` for as long as a `&Device<T>`
/// can exist (from initialisation until the registration is dropped).
#[repr(transparent)]
pub struct Device<T>(NetDevice, PhantomData<T>);

impl<T: Driver> Device<T> {
    /// Borrows the device at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must be a device allocated by [`Registration::register`] for
    /// `T`, with its `T` initialised and not yet dropped, for `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::net_device) -> &'a Device<T> {
        // SAFETY: Guaranteed by the caller; `Device` is transparent over
        // `NetDevice`, which is transparent over the C struct.
        unsafe { &*ptr.cast() }
    }

    /// The driver's state.
    pub fn data(&self) -> Pin<&T> {
        // SAFETY: By the type invariant the private area holds an initialised
        // `T` that stays pinned there while `self` is borrowed.
        unsafe { Pin::new_unchecked(&*bindings::netdev_priv(self.0.as_raw()).cast::<T>()) }
    }

    /// A counted reference to this device, for work that runs outside the
    /// driver's callbacks (a device's DMA engine thread, say), or `None`
    /// before the device is registered (in [`Driver::setup`]).
    ///
    /// The device cannot finish unregistering while the reference is held,
    /// so its holder must drop it when the device stops: in
    /// [`Driver::stop`], which unregistering calls first.
    pub fn get_ref(&self) -> Option<DeviceRef<T>> {
        // Unregistering may write the state meanwhile (`READ_ONCE` in C);
        // before registration a `&Device<T>` exists only inside setup, and
        // registering cannot run concurrently with it.
        // SAFETY: The device is live, so the field is valid for reads.
        let state = unsafe { core::ptr::addr_of!((*self.0.as_raw()).reg_state).read_volatile() };
        if u32::from(state) != bindings::netdev_reg_state_NETREG_REGISTERED {
            return None;
        }
        // INVARIANT: Registered, so `T` stays initialised until unregistering
        // has waited for this reference.
        Some(DeviceRef(ARef::from(&self.0), PhantomData))
    }

    /// Stops the stack from calling [`Driver::start_xmit`].
    pub fn stop_queue(&self) {
        // SAFETY: The device is live.
        unsafe { bindings::netif_stop_queue(self.0.as_raw()) };
    }

    /// Whether the stack is stopped from calling [`Driver::start_xmit`].
    pub fn is_queue_stopped(&self) -> bool {
        // SAFETY: The device is live; the helper reads the queue state bit.
        unsafe { bindings::netif_queue_stopped(self.0.as_raw()) }
    }

    /// Lets the stack call [`Driver::start_xmit`] again, rescheduling any
    /// queued frames.
    pub fn wake_queue(&self) {
        // SAFETY: The device is live.
        unsafe { bindings::netif_wake_queue(self.0.as_raw()) };
    }

    /// Reports link up (`up`) or down.
    pub fn set_carrier(&self, up: bool) {
        // SAFETY: The device is live; carrier changes are serialised by the
        // core's link watch.
        unsafe {
            if up {
                bindings::netif_carrier_on(self.0.as_raw())
            } else {
                bindings::netif_carrier_off(self.0.as_raw())
            }
        };
    }

    /// Hands a received frame (starting with its Ethernet header) to the
    /// stack from any context (`netif_rx`). Fails with `ENOBUFS` if the
    /// backlog dropped it, `EINVAL` if it is shorter than a header.
    ///
    /// The stack changes the frame's header, so it must be the only
    /// reference to it ([`SkBuff::unshare`] makes one).
    pub fn receive<S: Exclusive>(&self, skb: SkBuff<S>) -> Result {
        let skb = self.prepare_rx(skb)?;
        // SAFETY: `skb` is a prepared received frame whose reference we pass.
        let rc = unsafe { bindings::netif_rx(skb.into_raw()) };
        if rc == bindings::NET_RX_SUCCESS as i32 { Ok(()) } else { Err(ENOBUFS) }
    }

    /// Sets the frame's device and protocol and pulls its Ethernet header,
    /// as the stack expects of a received frame (`eth_type_trans`).
    pub(crate) fn prepare_rx<S: Exclusive>(&self, skb: SkBuff<S>) -> Result<SkBuff<Private>> {
        if (skb.headlen() as usize) < super::ethernet::HLEN {
            return Err(EINVAL);
        }
        let mut skb = skb.into_private();
        // `eth_type_trans` changes only the header, ours alone (`S: Exclusive`).
        // SAFETY: A full linear Ethernet header is there; the device is live.
        let proto = unsafe { bindings::eth_type_trans(skb.as_raw(), self.0.as_raw()) };
        skb.set_protocol(super::ethernet::EtherType(u16::from_be(proto)));
        Ok(skb)
    }
}

/// A counted reference to a registered device of driver `T` (made by
/// [`Device::get_ref`]).
///
/// # Invariants
///
/// The device was registered for `T` when the reference was taken.
/// [`Registration`] drops the `T` only after unregistering, which waits for
/// every reference: the `T` stays initialised while this one is held.
pub struct DeviceRef<T: Driver>(ARef<NetDevice>, PhantomData<T>);

// The `T` lives in the device's private area, not in the reference: moving
// the reference moves no `T`.
impl<T: Driver> Unpin for DeviceRef<T> {}

impl<T: Driver> Clone for DeviceRef<T> {
    fn clone(&self) -> Self {
        DeviceRef(self.0.clone(), PhantomData)
    }
}

impl<T: Driver> core::ops::Deref for DeviceRef<T> {
    type Target = Device<T>;

    fn deref(&self) -> &Device<T> {
        // SAFETY: Allocated for `T`, whose state stays initialised while the
        // reference is held (type invariant).
        unsafe { Device::from_raw(self.0.as_raw()) }
    }
}

impl<T> core::ops::Deref for Device<T> {
    type Target = NetDevice;

    fn deref(&self) -> &NetDevice {
        &self.0
    }
}

impl NetDevice {
    /// Whether the device's offloads `f` are on now (`ethtool -K` may turn
    /// them off at any time).
    pub fn has_features(&self, f: Features) -> bool {
        // SAFETY: The device is live; the field is read once (`READ_ONCE`).
        let on = unsafe { core::ptr::addr_of!((*self.as_raw()).features).read_volatile() };
        Features(on).contains(f)
    }

    /// Brings the device up (`dev_open`), as `ip link set DEV up` does.
    pub fn open(&self, rtnl: &Rtnl) -> Result {
        let _ = rtnl;
        // SAFETY: RTNL is held (`rtnl`) and the device is live.
        to_result(unsafe { bindings::dev_open(self.as_raw(), core::ptr::null_mut()) })
    }

    /// Sets the MTU (`dev_set_mtu`), as `ip link set DEV mtu N` does:
    /// `EINVAL` outside the device's bounds.
    pub fn set_mtu(&self, mtu: u32, rtnl: &Rtnl) -> Result {
        let _ = rtnl;
        let mtu = i32::try_from(mtu).map_err(|_| EINVAL)?;
        // SAFETY: RTNL is held (`rtnl`) and the device is live.
        to_result(unsafe { bindings::dev_set_mtu(self.as_raw(), mtu) })
    }

    /// Brings the device down (`dev_close`).
    pub fn close(&self, rtnl: &Rtnl) {
        let _ = rtnl;
        // SAFETY: RTNL is held (`rtnl`) and the device is live.
        unsafe { bindings::dev_close(self.as_raw()) };
    }
}

/// A registered Rust net device.
///
/// # Invariants
///
/// `dev` was allocated with room for a `T` in its private area, the `T` is
/// initialised, and the device is registered, until drop.
pub struct Registration<T: Driver> {
    dev: NonNull<bindings::net_device>,
    /// The peer-DMA capability published on the device, withdrawn before it
    /// unregisters.
    peer_dma: Option<super::peer_dma::Provider>,
    _p: PhantomData<T>,
}

// SAFETY: The registration only owns the device; all access to it goes
// through `&Device<T>`, which is `Sync` because `T` is.
unsafe impl<T: Driver> Send for Registration<T> {}
// SAFETY: See `Send`.
unsafe impl<T: Driver> Sync for Registration<T> {}

// The `T` lives pinned in the device's private area, not in the
// registration: moving the registration moves no `T`.
impl<T: Driver> Unpin for Registration<T> {}

impl<T: Driver> Registration<T> {
    /// Allocates an Ethernet device named `name` (which may contain `%d`)
    /// with a random locally administered MAC address, initialises its state
    /// with `init`, calls [`Driver::setup`], and registers it. Process
    /// context; RTNL must not be held.
    pub fn register(name: &CStr, init: impl PinInit<T, Error>) -> Result<Self> {
        Self::register_inner(name, init, None)
    }

    /// As [`Registration::register`], for a device that keeps received
    /// frames in its own memory: `provider` (a capability of this device,
    /// not yet published, which the driver state usually holds a clone of
    /// to deliver through) is published once the device is registered, so
    /// that forwarding paths find it with
    /// [`CapRef::lookup`](super::peer_dma::CapRef::lookup), and withdrawn
    /// before the device unregisters. `EBUSY` if `provider` was published
    /// before. Lookups find the capability from just after registration
    /// (not during it).
    pub fn register_capable(
        name: &CStr,
        init: impl PinInit<T, Error>,
        provider: &super::peer_dma::Provider,
    ) -> Result<Self> {
        Self::register_inner(name, init, Some(provider.clone()))
    }

    fn register_inner(
        name: &CStr,
        init: impl PinInit<T, Error>,
        provider: Option<super::peer_dma::Provider>,
    ) -> Result<Self> {
        if core::mem::align_of::<T>() > 1usize << bindings::L1_CACHE_SHIFT {
            // The private area is only cache-line aligned.
            return Err(EINVAL);
        }
        let priv_size = i32::try_from(core::mem::size_of::<T>()).map_err(|_| EINVAL)?;
        // `alloc_netdev_mqs` BUGs on names that do not fit: refuse them here.
        if name.to_bytes().len() >= super::device::IFNAMSIZ {
            return Err(EINVAL);
        }
        // SAFETY: Arguments are valid; `setup` is a function with the right
        // signature; the function returns a new device or null.
        let dev = unsafe {
            bindings::alloc_netdev_mqs(
                priv_size,
                name.as_char_ptr(),
                bindings::NET_NAME_ENUM as u8,
                Some(setup::<T>),
                1,
                1,
            )
        };
        let dev = NonNull::new(dev).ok_or(ENOMEM)?;
        // SAFETY: The device is new and live; its zeroed private area has
        // room and alignment for a `T` (checked above).
        let slot = unsafe { bindings::netdev_priv(dev.as_ptr()).cast::<T>() };
        // SAFETY: `slot` is valid, aligned, uninitialised memory that never
        // moves: it lives inside the device allocation.
        if let Err(e) = unsafe { init.__init(slot) } {
            // SAFETY: The device was never registered and holds no `T`.
            unsafe { bindings::free_netdev(dev.as_ptr()) };
            return Err(e);
        }
        // SAFETY: The device holds an initialised `T` until we drop it.
        let setup_result = T::setup(unsafe { Device::from_raw(dev.as_ptr()) });
        if let Err(e) = setup_result {
            // SAFETY: Not registered: drop the `T` we initialised, then free.
            unsafe {
                core::ptr::drop_in_place(slot);
                bindings::free_netdev(dev.as_ptr());
            }
            return Err(e);
        }
        if provider.is_some() {
            // SAFETY: The device is set up and not registered.
            if let Err(e) = unsafe { super::peer_dma::mark_capable(dev.as_ptr()) } {
                // SAFETY: Not registered: drop the `T` we initialised, then free.
                unsafe {
                    core::ptr::drop_in_place(slot);
                    bindings::free_netdev(dev.as_ptr());
                }
                return Err(e);
            }
        }
        // SAFETY: The device is fully set up; RTNL is not held (documented
        // requirement).
        if let Err(e) = to_result(unsafe { bindings::register_netdev(dev.as_ptr()) }) {
            // SAFETY: Not registered: drop the `T` we initialised, then free.
            unsafe {
                core::ptr::drop_in_place(slot);
                bindings::free_netdev(dev.as_ptr());
            }
            return Err(e);
        }
        // INVARIANT: Allocated for `T`, initialised, registered.
        let mut reg = Registration { dev, peer_dma: None, _p: PhantomData };
        if let Some(provider) = provider {
            // On failure `reg` unregisters the device as it goes. `drop`
            // withdraws the capability before unregistering.
            // SAFETY: Registered, allocated by `register_inner` with the capable device type.
            let published = unsafe { provider.publish(dev.as_ptr()) };
            published?;
            reg.peer_dma = Some(provider);
        }
        Ok(reg)
    }

    /// The device.
    pub fn device(&self) -> &Device<T> {
        // SAFETY: By the type invariant the device holds an initialised `T`
        // while `self` exists.
        unsafe { Device::from_raw(self.dev.as_ptr()) }
    }
}

impl<T: Driver> Drop for Registration<T> {
    fn drop(&mut self) {
        let dev = self.dev.as_ptr();
        if let Some(provider) = self.peer_dma.take() {
            // Before unregistering: once withdrawn, no forwarding path calls
            // into the driver, whose state goes below.
            // SAFETY: Published on this device, which is still registered.
            unsafe { provider.withdraw(dev) };
        }
        // Unregistering stops the device and waits until no operation runs and
        // no reference is held: after it nothing can reach the `T`.
        // SAFETY: The device is registered (type invariant).
        unsafe { bindings::unregister_netdev(dev) };
        // SAFETY: The private area holds our initialised `T`, now unreachable.
        unsafe { core::ptr::drop_in_place(bindings::netdev_priv(dev).cast::<T>()) };
        // SAFETY: Unregistered and its `T` dropped: the device can be freed.
        unsafe { bindings::free_netdev(dev) };
    }
}

/// Called by `alloc_netdev_mqs` to set up a new device.
///
/// # Safety
///
/// `dev` is a new, live device being allocated for `T`.
unsafe extern "C" fn setup<T: Driver>(dev: *mut bindings::net_device) {
    const {
        assert!(
            T::MAX_MTU >= bindings::ETH_MIN_MTU && T::MAX_MTU <= bindings::ETH_MAX_MTU,
            "Driver::MAX_MTU must lie between ETH_MIN_MTU and ETH_MAX_MTU"
        )
    };
    // SAFETY: `dev` is new and exclusively ours during allocation.
    unsafe {
        bindings::ether_setup(dev);
        (*dev).max_mtu = T::MAX_MTU;
        (*dev).hw_features |= T::FEATURES.0;
        (*dev).features |= T::FEATURES.0;
        // `start_xmit` runs with bottom halves off but interrupts on: no
        // netpoll, which would call it with interrupts off.
        bindings::polynic_netdev_disable_netpoll(dev);
        (*dev).netdev_ops = &Ops::<T>::VTABLE;
        bindings::eth_hw_addr_random(dev);
    }
}

/// The `net_device_ops` for `T`.
struct Ops<T>(PhantomData<T>);

impl<T: Driver> Ops<T> {
    const VTABLE: bindings::net_device_ops = bindings::net_device_ops {
        ndo_open: if T::HAS_OPEN { Some(Self::open) } else { None },
        ndo_stop: if T::HAS_STOP { Some(Self::stop) } else { None },
        ndo_start_xmit: Some(Self::start_xmit),
        ndo_get_stats64: if T::HAS_STATS { Some(Self::stats64) } else { None },
        // SAFETY: All-zero is a valid `net_device_ops` (every hook absent).
        ..unsafe { core::mem::zeroed() }
    };

    /// # Safety
    ///
    /// `dev` is a registered device of `T` (the core only calls these
    /// operations on devices that use this table).
    unsafe extern "C" fn open(dev: *mut bindings::net_device) -> crate::ffi::c_int {
        // SAFETY: See the function's requirements.
        from_result(|| T::open(unsafe { Device::from_raw(dev) }).map(|()| 0))
    }

    /// # Safety
    ///
    /// As for [`Self::open`].
    unsafe extern "C" fn stop(dev: *mut bindings::net_device) -> crate::ffi::c_int {
        // SAFETY: See the function's requirements.
        from_result(|| T::stop(unsafe { Device::from_raw(dev) }).map(|()| 0))
    }

    /// # Safety
    ///
    /// As for [`Self::open`]; `skb` is a buffer whose reference is passed to
    /// the driver.
    unsafe extern "C" fn start_xmit(
        skb: *mut bindings::sk_buff,
        dev: *mut bindings::net_device,
    ) -> bindings::netdev_tx_t {
        // SAFETY: See the function's requirements; the buffer may be shared.
        let (dev, owned) = unsafe { (Device::<T>::from_raw(dev), SkBuff::from_raw(skb)) };
        match T::start_xmit(dev, XmitSkb { skb: owned, _brand: PhantomData }) {
            TxVerdict::Done => bindings::netdev_tx_NETDEV_TX_OK,
            // The stack keeps its reference and requeues the buffer it
            // passed, which `Requeue` can only be (`XmitSkb` is branded to
            // this call); the pointer check costs nothing and would turn a
            // broken brand into a dropped frame instead of a double free.
            TxVerdict::Busy(back) if back.skb == skb => bindings::netdev_tx_NETDEV_TX_BUSY,
            TxVerdict::Busy(back) => {
                // SAFETY: `back.skb` came from `SkBuff::into_raw`; we own it.
                drop(unsafe { SkBuff::from_raw(back.skb) });
                bindings::netdev_tx_NETDEV_TX_OK
            }
        }
    }

    /// # Safety
    ///
    /// As for [`Self::open`]; `out` is valid for writes.
    unsafe extern "C" fn stats64(dev: *mut bindings::net_device, out: *mut bindings::rtnl_link_stats64) {
        // SAFETY: See the function's requirements.
        let s = T::stats(unsafe { Device::from_raw(dev) });
        // `out` may be only 4-byte aligned (netlink puts it in a message
        // attribute), so every field is written unaligned.
        // SAFETY: `out` is valid for writes (caller); unaligned writes need no alignment.
        unsafe {
            use core::ptr::addr_of_mut;
            addr_of_mut!((*out).rx_packets).write_unaligned(s.rx_packets);
            addr_of_mut!((*out).rx_bytes).write_unaligned(s.rx_bytes);
            addr_of_mut!((*out).tx_packets).write_unaligned(s.tx_packets);
            addr_of_mut!((*out).tx_bytes).write_unaligned(s.tx_bytes);
            addr_of_mut!((*out).rx_dropped).write_unaligned(s.rx_dropped);
            addr_of_mut!((*out).tx_dropped).write_unaligned(s.tx_dropped);
        }
    }
}
