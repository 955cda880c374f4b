// SPDX-License-Identifier: GPL-2.0

//! Network namespaces.
//!
//! Net devices are looked up by name or index *within* a namespace; these
//! types say which one.
//!
//! C header: [`include/net/net_namespace.h`](srctree/include/net/net_namespace.h)

use crate::{
    bindings,
    error::Result,
    sync::aref::{ARef, AlwaysRefCounted},
    types::Opaque,
};
use core::ptr::NonNull;

/// A network namespace (`struct net`).
///
/// # Invariants
///
/// A `&Namespace` points at a live `struct net` whose reference count is held
/// for at least the lifetime of the borrow, either by an [`ARef`] or because it
/// is the initial namespace, which is never freed.
#[repr(transparent)]
pub struct Namespace(Opaque<bindings::net>);

// SAFETY: `struct net` is reference counted with atomic operations; the
// operations this type exposes may run on any thread.
unsafe impl Send for Namespace {}
// SAFETY: `&Namespace` only allows reading immutable identity and taking
// references, which the C side synchronises.
unsafe impl Sync for Namespace {}

impl Namespace {
    /// The initial network namespace, which lives as long as the kernel.
    pub fn init() -> &'static Namespace {
        // SAFETY: `init_net` is a static that is never freed, so a shared
        // reference to it is valid for `'static`; `Namespace` is transparent.
        unsafe { &*(&raw mut bindings::init_net).cast::<Namespace>() }
    }

    /// The network namespace of the calling task, referenced. Process
    /// context.
    ///
    /// Fails with `ESRCH` when the task has no namespaces any more: a task
    /// that is exiting drops them before the deferred closes of its files
    /// run, so a file's release can see this.
    pub fn current() -> Result<ARef<Namespace>> {
        // SAFETY: Process context (documented requirement); the helper takes
        // a reference, or returns null if the task has no namespace proxy.
        let raw = unsafe { bindings::polynic_current_net_get() };
        let raw = NonNull::new(raw.cast::<Namespace>()).ok_or(crate::error::code::ESRCH)?;
        // SAFETY: `raw` is a valid namespace whose reference we own and hand
        // to the `ARef`.
        Ok(unsafe { ARef::from_raw(raw) })
    }

    /// Borrows the namespace at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must point at a live `struct net` that stays referenced for `'a`.
    pub unsafe fn from_raw<'a>(ptr: *mut bindings::net) -> &'a Namespace {
        // SAFETY: Guaranteed by the caller; `Namespace` is transparent.
        unsafe { &*ptr.cast() }
    }

    /// The raw `struct net` pointer.
    pub fn as_raw(&self) -> *mut bindings::net {
        self.0.get()
    }

    /// Whether the calling task may administer this namespace's networking
    /// (`CAP_NET_ADMIN` in the user namespace that owns it). Process
    /// context.
    pub fn caller_has_net_admin(&self) -> bool {
        // The owning user namespace lives as long as the network namespace.
        // SAFETY: The namespace is alive while borrowed; `ns_capable` takes any capability.
        unsafe { bindings::ns_capable((*self.as_raw()).user_ns, bindings::CAP_NET_ADMIN as i32) }
    }

    /// Whether `self` and `other` are the same namespace.
    pub fn is(&self, other: &Namespace) -> bool {
        core::ptr::eq(self.as_raw(), other.as_raw())
    }
}

// SAFETY: `get_net` and `put_net` keep the namespace alive while the count is
// non-zero, which is what `ARef` needs.
unsafe impl AlwaysRefCounted for Namespace {
    fn inc_ref(&self) {
        // SAFETY: By the type invariant the count is non-zero, so taking one
        // more reference is allowed.
        unsafe { bindings::get_net(self.as_raw()) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: The caller owns one reference, which is dropped here.
        unsafe { bindings::put_net(obj.as_ptr().cast()) };
    }
}
