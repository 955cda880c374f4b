// SPDX-License-Identifier: GPL-2.0

//! Kernel memory shared with user space through `mmap`.
//!
//! A [`SharedArea`] is zeroed virtually contiguous memory (`vmalloc_user`)
//! that a driver maps into a process ([`SharedArea::map`]) to exchange
//! rings and packet buffers with it without system calls. User space may
//! write any byte of it at any time, concurrently with the kernel, so the
//! kernel never forms a Rust reference to its bytes other than to atomic
//! words: it reads and writes 32-bit words atomically
//! ([`SharedArea::word`]) and moves bulk data with copies that C code
//! performs ([`SharedArea::raw_range`], for the socket buffer copies in
//! [`crate::net::skb`], which are `unsafe` because a plain copy must not
//! overlap words the kernel accesses atomically at the same time; a driver
//! keeps its control words and its data buffers apart). Whatever it reads
//! is only a snapshot that it must validate before use.
//!
//! C header: [`include/linux/vmalloc.h`](srctree/include/linux/vmalloc.h)

use crate::{
    bindings,
    error::{code::*, to_result, Result},
    mm::virt::VmaNew,
    page::PAGE_SIZE,
};
use core::{ptr::NonNull, sync::atomic::AtomicU32};

/// Memory a driver shares with a user-space process.
///
/// # Invariants
///
/// `ptr` is the start of a `vmalloc_user`-style allocation of `len` bytes, a
/// non-zero multiple of the page size, owned by this object and freed when
/// it is dropped; pages mapped into a process stay allocated until that
/// process unmaps them (the mapping holds its own page references).
pub struct SharedArea {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: The area is plain memory with no thread affinity; every access the
// type offers is atomic or a copy through a raw pointer.
unsafe impl Send for SharedArea {}
// SAFETY: As above: shared references only allow atomic word accesses and
// raw pointers whose use is `unsafe`.
unsafe impl Sync for SharedArea {}

impl SharedArea {
    /// Allocates a zeroed area of at least `len` bytes, rounded up to whole
    /// pages, charged to the calling task's memory cgroup (a process asks for
    /// it and keeps it while it holds the file). `EINVAL` for zero, `ENOMEM`
    /// if the memory is not there or the cgroup's limit is reached. Process
    /// context.
    pub fn new(len: usize) -> Result<Self> {
        if len == 0 {
            return Err(EINVAL);
        }
        let len = len.checked_next_multiple_of(PAGE_SIZE).ok_or(EINVAL)?;
        // The helper returns zeroed memory flagged for user mapping (as
        // `vmalloc_user`), charged to the caller's memory cgroup, or null.
        // SAFETY: It may be called with any size, in process context (ours).
        let ptr = unsafe { bindings::polynic_vmalloc_user_account(len as _) }.cast::<u8>();
        // INVARIANT: A new allocation of `len` bytes, a whole number of pages.
        Ok(SharedArea { ptr: NonNull::new(ptr).ok_or(ENOMEM)?, len })
    }

    /// The area's size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: an area has at least one page.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Maps the whole area into `vma`, which must start at file offset 0
    /// and be exactly as long as the area (`EINVAL` otherwise). The mapping
    /// cannot grow (`VM_DONTEXPAND`).
    pub fn map(&self, vma: &VmaNew) -> Result {
        let size = vma.end().checked_sub(vma.start()).ok_or(EINVAL)?;
        if vma.pgoff() != 0 || size != self.len {
            return Err(EINVAL);
        }
        // The call maps the allocation page by page, each with a reference of
        // its own, so the pages outlive the area if the mapping does.
        // SAFETY: `vma` is being set up (`VmaNew`); `ptr` is a `vmalloc_user`-style area of its length.
        to_result(unsafe { bindings::remap_vmalloc_range(vma.as_ptr(), self.ptr.as_ptr().cast(), 0) })
    }

    /// The 32-bit word at byte `offset`, if it lies wholly within the area
    /// and is 4-byte aligned. User space may change it at any moment: read
    /// it with the ordering the protocol on top defines, and validate what
    /// was read.
    pub fn word(&self, offset: usize) -> Option<&AtomicU32> {
        if offset % 4 != 0 || offset.checked_add(4)? > self.len {
            return None;
        }
        // The allocation is page-aligned and lives as long as `self`; the kernel
        // accesses these bytes only atomically (raw copies are kept off them).
        // SAFETY: The four bytes at `offset` are in bounds and 4-aligned (checked above).
        Some(unsafe { AtomicU32::from_ptr(self.ptr.as_ptr().add(offset).cast()) })
    }

    /// A raw pointer to `len` bytes at `offset`, if they lie within the area
    /// (`EINVAL` otherwise). Obtaining it is safe; reading or writing through
    /// it must be done by C copy routines (never through Rust references),
    /// since user space may write the same bytes concurrently, and only while
    /// `self` is alive.
    pub fn raw_range(&self, offset: usize, len: usize) -> Result<*mut u8> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => {
                // SAFETY: `offset` is within the allocation (checked above).
                Ok(unsafe { self.ptr.as_ptr().add(offset) })
            }
            _ => Err(EINVAL),
        }
    }
}

impl Drop for SharedArea {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `vmalloc_user` and is freed only here (type
        // invariant); pages still mapped by a process keep their own references.
        unsafe { bindings::vfree(self.ptr.as_ptr().cast()) };
    }
}
