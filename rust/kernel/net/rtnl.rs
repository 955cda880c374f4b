// SPDX-License-Identifier: GPL-2.0

//! The routing netlink lock (RTNL), which serialises configuration of every
//! net device.
//!
//! Functions that need RTNL held take a [`&Rtnl`](Rtnl) token. The only ways
//! to get one are [`lock`], which takes the lock for the token's lifetime,
//! and callbacks that the kernel runs with RTNL already held (device
//! notifiers), which lend one for their duration. This turns "caller must
//! hold RTNL" from a comment into a type check.
//!
//! C header: [`include/linux/rtnetlink.h`](srctree/include/linux/rtnetlink.h)

use crate::bindings;
use core::marker::PhantomData;

/// Proof that RTNL is held by the current task.
///
/// # Invariants
///
/// While a `&Rtnl` exists, the current task holds RTNL. It is neither `Send`
/// nor `Sync`: the lock belongs to the task that took it.
pub struct Rtnl {
    _not_send: PhantomData<*mut ()>,
}

impl Rtnl {
    /// Lends a token inside a callback that the kernel runs with RTNL held.
    ///
    /// # Safety
    ///
    /// The current task must hold RTNL for as long as the returned token is
    /// borrowed.
    pub(crate) unsafe fn assume_held() -> Rtnl {
        // INVARIANT: Guaranteed by the caller.
        Rtnl { _not_send: PhantomData }
    }
}

/// RTNL, taken by [`lock`] and released on drop.
pub struct RtnlGuard {
    token: Rtnl,
}

impl core::ops::Deref for RtnlGuard {
    type Target = Rtnl;

    fn deref(&self) -> &Rtnl {
        &self.token
    }
}

impl Drop for RtnlGuard {
    fn drop(&mut self) {
        // SAFETY: The guard exists only while this task holds RTNL (taken in
        // `lock`), so releasing it here is balanced.
        unsafe { bindings::rtnl_unlock() };
    }
}

/// Takes RTNL; sleeps until it is available. Process context only, and not
/// from a callback that already runs under RTNL (that would deadlock).
///
/// # Examples
///
/// ```
/// let rtnl = kernel::net::rtnl::lock();
/// // SAFETY: Reading a global flag; no invariant involved.
/// assert!(unsafe { kernel::bindings::rtnl_is_locked() } != 0);
/// drop(rtnl);
/// ```
pub fn lock() -> RtnlGuard {
    // SAFETY: Process context is this function's documented requirement.
    unsafe { bindings::rtnl_lock() };
    // INVARIANT: We just took RTNL; the guard releases it.
    RtnlGuard {
        // SAFETY: RTNL is held until the guard is dropped.
        token: unsafe { Rtnl::assume_held() },
    }
}
