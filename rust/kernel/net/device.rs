// SPDX-License-Identifier: GPL-2.0

//! Network devices as their users see them: references, lookup and state.
//!
//! A protocol that sends on or listens to a device holds an
//! [`ARef<NetDevice>`]. Such a reference keeps the `struct net_device` alive
//! but does not stop it from being unregistered: unregistration *waits* for
//! every reference to go. A holder must therefore watch for
//! [`Event::Unregister`](super::notifier::Event::Unregister) (see
//! [`super::notifier`]) and drop its references then.
//!
//! C header: [`include/linux/netdevice.h`](srctree/include/linux/netdevice.h)

use super::{ethernet::MacAddr, namespace::Namespace};
use crate::{
    bindings,
    error::{code::ENODEV, Result},
    fmt,
    str::{CStr, CStrExt as _},
    sync::aref::{ARef, AlwaysRefCounted},
    types::Opaque,
};
use core::ptr::NonNull;

/// Size of an interface name buffer, terminating NUL included.
pub const IFNAMSIZ: usize = bindings::IFNAMSIZ as usize;

/// An interface name as user space writes one: non-empty, shorter than
/// [`IFNAMSIZ`] (which counts the terminating NUL) and without `/`;
/// `EINVAL` otherwise.
pub fn interface_name(text: &str) -> Result<crate::str::CString> {
    if text.is_empty() || text.len() >= IFNAMSIZ || text.contains('/') {
        return Err(crate::error::code::EINVAL);
    }
    crate::str::CString::try_from_fmt(format_args!("{}", text))
}

/// A network device (`struct net_device`).
///
/// # Invariants
///
/// A `&NetDevice` points at a `struct net_device` that stays allocated for the
/// lifetime of the borrow: either an [`ARef`] holds a device reference, or
/// the C caller that handed the pointer to Rust guarantees it (packet and
/// notifier callbacks run while the device is live).
#[repr(transparent)]
pub struct NetDevice(Opaque<bindings::net_device>);

// SAFETY: Every operation exposed on `NetDevice` is safe from any thread: the
// reference count is per-CPU/atomic and state is read with atomic bit tests
// or `READ_ONCE`.
unsafe impl Send for NetDevice {}
// SAFETY: See `Send`; `&NetDevice` permits no unsynchronised mutation.
unsafe impl Sync for NetDevice {}

// SAFETY: `dev_hold`/`dev_put` keep the structure allocated while the count is
// non-zero, which is what `ARef` requires.
unsafe impl AlwaysRefCounted for NetDevice {
    fn inc_ref(&self) {
        // SAFETY: By the type invariant the device is live, so its count may
        // be raised.
        unsafe { bindings::dev_hold(self.as_raw()) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: The caller owns one reference, which is dropped here.
        unsafe { bindings::dev_put(obj.as_ptr().cast()) };
    }
}

/// An interface name copied out of a device (it can change on rename).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DeviceName([u8; IFNAMSIZ]);

impl DeviceName {
    /// The name's bytes, without the terminating NUL.
    pub fn as_bytes(&self) -> &[u8] {
        let len = self.0.iter().position(|&b| b == 0).unwrap_or(IFNAMSIZ);
        &self.0[..len]
    }
}

impl fmt::Display for DeviceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.as_bytes() {
            // Interface names are printable ASCII; show anything else escaped.
            if b.is_ascii_graphic() {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "\\x{:02x}", b)?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for DeviceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        fmt::Display::fmt(self, f)?;
        f.write_str("\"")
    }
}

impl NetDevice {
    /// Looks up a device by name in `ns`, taking a reference.
    ///
    /// Fails with `ENODEV` if there is none.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::net::{device::NetDevice, namespace::Namespace};
    ///
    /// let lo = NetDevice::get_by_name(Namespace::init(), c"lo")?;
    /// assert_eq!(lo.name().as_bytes(), b"lo");
    /// assert!(lo.ifindex() > 0);
    /// let again = NetDevice::get_by_index(Namespace::init(), lo.ifindex())?;
    /// assert!(core::ptr::eq(&*lo, &*again));
    /// assert!(NetDevice::get_by_name(Namespace::init(), c"polynic-none").is_err());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn get_by_name(ns: &Namespace, name: &CStr) -> Result<ARef<NetDevice>> {
        // Returns a held reference, or null.
        // SAFETY: `ns` is live (type invariant); `name` is NUL-terminated.
        let dev = unsafe { bindings::dev_get_by_name(ns.as_raw(), name.as_char_ptr()) };
        let dev = NonNull::new(dev).ok_or(ENODEV)?;
        // SAFETY: We own the reference `dev_get_by_name` took.
        Ok(unsafe { ARef::from_raw(dev.cast()) })
    }

    /// Looks up a device by interface index in `ns`, taking a reference.
    ///
    /// Fails with `ENODEV` if there is none.
    pub fn get_by_index(ns: &Namespace, ifindex: i32) -> Result<ARef<NetDevice>> {
        // SAFETY: `ns` is live by its type invariant; the function returns a
        // held reference or null.
        let dev = unsafe { bindings::dev_get_by_index(ns.as_raw(), ifindex) };
        let dev = NonNull::new(dev).ok_or(ENODEV)?;
        // SAFETY: We own the reference `dev_get_by_index` took.
        Ok(unsafe { ARef::from_raw(dev.cast()) })
    }

    /// Borrows the device at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must point at a `struct net_device` that stays allocated for `'a`.
    pub unsafe fn from_raw<'a>(ptr: *mut bindings::net_device) -> &'a NetDevice {
        // SAFETY: Guaranteed by the caller; `NetDevice` is transparent.
        unsafe { &*ptr.cast() }
    }

    /// The raw `struct net_device` pointer.
    pub fn as_raw(&self) -> *mut bindings::net_device {
        self.0.get()
    }

    /// The interface name, copied consistently with respect to renames.
    pub fn name(&self) -> DeviceName {
        let mut name = [0u8; IFNAMSIZ];
        // SAFETY: The device is live (type invariant) and `name` has room for
        // `IFNAMSIZ` bytes, which is what `netdev_copy_name` writes at most.
        unsafe { bindings::netdev_copy_name(self.as_raw(), name.as_mut_ptr().cast()) };
        DeviceName(name)
    }

    /// The interface index, unique within the device's namespace *now*: a
    /// move to another namespace may give the device a new index, so the
    /// value identifies the device only together with
    /// [`NetDevice::namespace`] read under the same RTNL hold.
    pub fn ifindex(&self) -> i32 {
        // SAFETY: The device is live; the helper reads the index once
        // (`READ_ONCE`), as it can change during a namespace move.
        unsafe { bindings::polynic_netdev_ifindex(self.as_raw()) }
    }

    /// The current MTU (it can change at any time under RTNL).
    pub fn mtu(&self) -> u32 {
        // SAFETY: The device is live; the helper reads with `READ_ONCE`.
        unsafe { bindings::polynic_netdev_mtu(self.as_raw()) }
    }

    /// Bytes a sender must reserve in front of its link-layer header.
    pub fn ll_reserved_space(&self) -> u32 {
        // SAFETY: The device is live.
        unsafe { bindings::polynic_netdev_ll_reserved(self.as_raw()) }
    }

    /// The device's hardware address now, if it is an Ethernet-sized one;
    /// `None` also if it kept changing while it was read.
    ///
    /// The address can change at any time (`ip link set DEV address`,
    /// under RTNL). This is a snapshot copied until two copies agree, so it
    /// is not half old, half new unless a writer stalls in the middle of its
    /// own copy between the two reads; a caller holding RTNL reads a stable
    /// address. A user that must notice changes reads it again, or watches
    /// [`Event::ChangeAddr`](super::notifier::Event::ChangeAddr).
    pub fn mac_addr(&self) -> Option<MacAddr> {
        let dev = self.as_raw();
        // SAFETY: The device is live; `addr_len` is set at setup and fixed
        // while the device is registered.
        let len = unsafe { (*dev).addr_len };
        if usize::from(len) != super::ethernet::ALEN {
            return None;
        }
        let mut a = [0u8; super::ethernet::ALEN];
        // The helper copies the address until two reads agree.
        // SAFETY: The device is live and `a` has room for `ALEN` bytes.
        let agreed = unsafe { bindings::polynic_netdev_copy_addr(dev, a.as_mut_ptr(), a.len() as u32) };
        agreed.then_some(MacAddr(a))
    }

    /// Administratively up (`IFF_UP`).
    pub fn is_up(&self) -> bool {
        // SAFETY: The device is live; the helper reads with `READ_ONCE`.
        let flags = unsafe { bindings::polynic_netdev_flags(self.as_raw()) };
        flags & bindings::net_device_flags_IFF_UP != 0
    }

    /// Opened and able to transmit (`netif_running`).
    pub fn is_running(&self) -> bool {
        // SAFETY: The device is live.
        unsafe { bindings::netif_running(self.as_raw()) }
    }

    /// The link has carrier.
    pub fn has_carrier(&self) -> bool {
        // SAFETY: The device is live.
        unsafe { bindings::netif_carrier_ok(self.as_raw()) }
    }

    /// Number of transmit queues.
    pub fn num_tx_queues(&self) -> u32 {
        // SAFETY: The device is live; the count is fixed at allocation.
        unsafe { (*self.as_raw()).num_tx_queues }
    }

    /// Whether transmit queue `index` is stopped, by its driver or by byte
    /// queue limits. `None` if the device has no such queue.
    pub fn tx_queue_stopped(&self, index: u32) -> Option<bool> {
        if index >= self.num_tx_queues() {
            return None;
        }
        // SAFETY: The device is live and `index` is below `num_tx_queues`, so
        // the queue exists.
        Some(unsafe { bindings::polynic_netif_xmit_stopped(self.as_raw(), index) })
    }

    /// The namespace the device is in now (devices can move), or `None` if
    /// that namespace is being dismantled.
    ///
    /// The namespace is referenced, so it outlives a later move of the
    /// device. Holding the device does not keep its namespace alive: while a
    /// namespace is torn down its count is already zero and its devices are
    /// still in it, so the reference is taken only if the count is not zero.
    pub fn namespace(&self) -> Option<ARef<Namespace>> {
        // SAFETY: The device is live; the helper reads its namespace under RCU
        // and takes a reference only if the count is not zero.
        let raw = unsafe { bindings::polynic_dev_net_get(self.as_raw()) };
        let raw = NonNull::new(raw.cast::<Namespace>())?;
        // SAFETY: `raw` is a live namespace whose reference we own and hand to
        // the `ARef`.
        Some(unsafe { ARef::from_raw(raw) })
    }
}

impl fmt::Debug for NetDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NetDevice(")?;
        fmt::Display::fmt(&self.name(), f)?;
        write!(f, ", ifindex {})", self.ifindex())
    }
}
