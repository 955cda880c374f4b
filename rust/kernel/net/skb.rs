// SPDX-License-Identifier: GPL-2.0

//! Socket buffers (`struct sk_buff`): the packets of the network stack.
//!
//! [`SkBuff`] owns one reference to a socket buffer. Its data is reached only
//! through bounds-checked byte slices of the valid linear area, so safe code
//! cannot read past the end of a packet or into another user's headroom.
//! Buffers can be shared (several references) or cloned (several headers on
//! one data area); writing is allowed only once the buffer is private, which
//! [`SkBuff::make_writable`] arranges.
//!
//! C header: [`include/linux/skbuff.h`](srctree/include/linux/skbuff.h)

use super::{device::NetDevice, ethernet::{EthHdr, EtherType}};
use crate::{
    alloc::Flags,
    bindings,
    error::{code::*, to_result, Result},
};
use core::ptr::NonNull;

/// An owned reference to a socket buffer.
///
/// Dropping it frees the reference as a *drop* (visible to drop monitors);
/// [`SkBuff::consume`] frees it as normal consumption.
///
/// # Invariants
///
/// `self.0` points at a valid `struct sk_buff` of which this value owns one
/// reference (`skb->users`).
pub struct SkBuff(NonNull<bindings::sk_buff>);

// SAFETY: An skb reference may be handed to and freed from any context; the
// stack does so constantly.
unsafe impl Send for SkBuff {}

/// What [`SkBuff::transmit`] did with a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxOutcome {
    /// Accepted by the device or its queue.
    Queued,
    /// Accepted, but the queue is congested: the sender should slow down.
    Congested,
}

impl SkBuff {
    /// Allocates a buffer with `headroom` bytes reserved in front of an empty
    /// data area that can grow by `size` bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::net::skb::SkBuff;
    ///
    /// let mut skb = SkBuff::alloc(32, 64, GFP_KERNEL)?;
    /// assert_eq!(skb.len(), 0);
    /// assert!(skb.headroom() >= 32);
    /// skb.put(10)?.copy_from_slice(b"0123456789");
    /// skb.push(2)?.copy_from_slice(b"ab");
    /// assert_eq!(skb.data(), b"ab0123456789");
    /// skb.pull(3)?;
    /// assert_eq!(skb.data(), b"123456789");
    /// // Past the end of the allocation: refused, not a panic.
    /// assert!(skb.put(4096).is_err());
    /// assert!(skb.pull(100).is_err());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn alloc(headroom: u32, size: u32, flags: Flags) -> Result<SkBuff> {
        let total = headroom.checked_add(size).ok_or(EINVAL)?;
        // SAFETY: `alloc_skb` may be called with any size and flags; it
        // returns a new buffer with one reference, or null.
        let skb = unsafe { bindings::alloc_skb(total, flags.as_raw()) };
        let skb = SkBuff(NonNull::new(skb).ok_or(ENOMEM)?);
        // SAFETY: The buffer is new and empty, so reserving headroom within
        // its size is allowed.
        unsafe { bindings::skb_reserve(skb.as_raw(), headroom as i32) };
        Ok(skb)
    }

    /// Allocates a buffer for sending `size` bytes of link-layer frame on
    /// `dev`, with the headroom the device asks for.
    pub fn alloc_for(dev: &NetDevice, size: u32, flags: Flags) -> Result<SkBuff> {
        Self::alloc(dev.ll_reserved_space(), size, flags)
    }

    /// Takes ownership of a reference.
    ///
    /// # Safety
    ///
    /// `ptr` must point at a valid `struct sk_buff` and the caller must own
    /// one reference to it, which passes to the returned value.
    pub unsafe fn from_raw(ptr: *mut bindings::sk_buff) -> SkBuff {
        // SAFETY: Non-null by the caller's guarantee.
        SkBuff(unsafe { NonNull::new_unchecked(ptr) })
    }

    /// Gives up ownership of the reference without freeing it.
    pub fn into_raw(self) -> *mut bindings::sk_buff {
        let ptr = self.0.as_ptr();
        core::mem::forget(self);
        ptr
    }

    /// The raw pointer.
    pub fn as_raw(&self) -> *mut bindings::sk_buff {
        self.0.as_ptr()
    }

    /// Total length of the data, including any paged part.
    pub fn len(&self) -> u32 {
        // SAFETY: The buffer is valid by the type invariant.
        unsafe { (*self.as_raw()).len }
    }

    /// Whether the buffer holds no data.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Length of the linear part, the part [`Self::data`] shows.
    pub fn headlen(&self) -> u32 {
        // SAFETY: The buffer is valid.
        unsafe { bindings::skb_headlen(self.as_raw()) }
    }

    /// Free bytes in front of the data.
    pub fn headroom(&self) -> u32 {
        // SAFETY: The buffer is valid.
        unsafe { bindings::skb_headroom(self.as_raw()) }
    }

    /// Free bytes after the data (zero for a paged buffer).
    pub fn tailroom(&self) -> u32 {
        // SAFETY: The buffer is valid.
        let room = unsafe { bindings::skb_tailroom(self.as_raw()) };
        room.max(0) as u32
    }

    /// Whether the data area is shared with clones or other references, so
    /// that it must not be written.
    pub fn is_shared(&self) -> bool {
        // SAFETY: The buffer is valid.
        unsafe { bindings::skb_shared(self.as_raw()) != 0 || bindings::skb_cloned(self.as_raw()) != 0 }
    }

    /// The linear data, `headlen()` bytes from `skb->data`.
    pub fn data(&self) -> &[u8] {
        let skb = self.as_raw();
        // SAFETY: `data` points at `headlen` initialised bytes, unmodified while
        // borrowed: writers need `&mut self` and a private buffer.
        unsafe { core::slice::from_raw_parts((*skb).data, self.headlen() as usize) }
    }

    /// The linear data, writable. Fails with `EPERM` if the buffer is shared
    /// (see [`Self::make_writable`]).
    pub fn data_mut(&mut self) -> Result<&mut [u8]> {
        if self.is_shared() {
            return Err(EPERM);
        }
        let skb = self.as_raw();
        // SAFETY: As in `data`, and the buffer is private to this reference,
        // so no one else reads or writes it while the borrow lasts.
        Ok(unsafe { core::slice::from_raw_parts_mut((*skb).data, self.headlen() as usize) })
    }

    /// Makes the buffer private (unshares the reference and the data area)
    /// and linear, so that [`Self::data_mut`] succeeds. May copy.
    pub fn make_writable(self, flags: Flags) -> Result<SkBuff> {
        // SAFETY: We pass our reference; `skb_share_check` returns a private one
        // (possibly a clone, dropping ours) or null after freeing ours.
        let skb = unsafe { bindings::skb_share_check(self.into_raw(), flags.as_raw()) };
        let mut skb = SkBuff(NonNull::new(skb).ok_or(ENOMEM)?);
        // SAFETY: `skb` is now referenced only by us.
        to_result(unsafe { bindings::skb_unclone(skb.as_raw(), flags.as_raw()) })?;
        skb.linearize()?;
        Ok(skb)
    }

    /// Pulls all paged data into the linear area.
    pub fn linearize(&mut self) -> Result {
        // SAFETY: `&mut self` may change the layout; a cloned buffer gets a new
        // head, so readers of the shared data are unaffected.
        to_result(unsafe { bindings::skb_linearize(self.as_raw()) })
    }

    /// Appends `len` bytes to the data and returns them, zeroed. Fails with
    /// `ENOSPC` if the tailroom is too small, `EPERM` if the buffer is shared.
    pub fn put(&mut self, len: u32) -> Result<&mut [u8]> {
        if self.is_shared() {
            return Err(EPERM);
        }
        if len > self.tailroom() || self.headlen() != self.len() {
            return Err(ENOSPC);
        }
        // SAFETY: The buffer is private and linear with at least `len` bytes
        // of tailroom, so `skb_put` cannot overrun.
        let p = unsafe { bindings::skb_put(self.as_raw(), len) }.cast::<u8>();
        // SAFETY: `p` points at the `len` bytes just added, inside the buffer
        // and private to us; zeroing them first makes the slice initialised.
        Ok(unsafe {
            core::ptr::write_bytes(p, 0, len as usize);
            core::slice::from_raw_parts_mut(p, len as usize)
        })
    }

    /// Prepends `len` bytes to the data and returns them, zeroed. Fails with
    /// `ENOSPC` if the headroom is too small, `EPERM` if the buffer is shared.
    pub fn push(&mut self, len: u32) -> Result<&mut [u8]> {
        if self.is_shared() {
            return Err(EPERM);
        }
        if len > self.headroom() {
            return Err(ENOSPC);
        }
        // SAFETY: The buffer is private with at least `len` bytes of
        // headroom, so `skb_push` cannot underrun.
        let p = unsafe { bindings::skb_push(self.as_raw(), len) }.cast::<u8>();
        // SAFETY: `p` points at the `len` bytes just added, inside the buffer
        // and private to us; zeroing them first makes the slice initialised.
        Ok(unsafe {
            core::ptr::write_bytes(p, 0, len as usize);
            core::slice::from_raw_parts_mut(p, len as usize)
        })
    }

    /// Removes `len` bytes from the front of the linear data. Fails with
    /// `EINVAL` if there are fewer.
    pub fn pull(&mut self, len: u32) -> Result {
        if len > self.headlen() {
            return Err(EINVAL);
        }
        // SAFETY: At least `len` linear bytes exist, so the data pointer stays in
        // the linear area; only this header changes, not shared data.
        unsafe { bindings::skb_pull(self.as_raw(), len) };
        Ok(())
    }

    /// Copies `out.len()` bytes starting `offset` bytes into the data
    /// (linear or paged) into `out`. Fails with `EFAULT` if the range is not
    /// all inside the data.
    pub fn copy_bits(&self, offset: u32, out: &mut [u8]) -> Result {
        let len = i32::try_from(out.len()).map_err(|_| EINVAL)?;
        let offset = i32::try_from(offset).map_err(|_| EINVAL)?;
        // SAFETY: `out` is valid for `len` bytes of writes; `skb_copy_bits`
        // checks the range against the buffer and fails rather than overrun.
        to_result(unsafe {
            bindings::skb_copy_bits(self.as_raw(), offset, out.as_mut_ptr().cast(), len)
        })
    }

    /// A new reference with its own header on the same data (`skb_clone`).
    /// Both become read-only until made writable.
    pub fn try_clone(&self, flags: Flags) -> Result<SkBuff> {
        // SAFETY: The buffer is valid; the clone is returned with one
        // reference, or null.
        let c = unsafe { bindings::skb_clone(self.as_raw(), flags.as_raw()) };
        Ok(SkBuff(NonNull::new(c).ok_or(ENOMEM)?))
    }

    /// The link-layer protocol (`skb->protocol`).
    pub fn protocol(&self) -> EtherType {
        // SAFETY: The buffer is valid.
        EtherType(unsafe { bindings::polynic_skb_protocol(self.as_raw()) })
    }

    /// Sets the link-layer protocol.
    pub fn set_protocol(&mut self, proto: EtherType) {
        // SAFETY: The buffer is valid and the header is ours to change.
        unsafe { bindings::polynic_skb_set_protocol(self.as_raw(), proto.0) };
    }

    /// Interface index the buffer arrived on (0 if it did not arrive).
    pub fn input_ifindex(&self) -> i32 {
        // SAFETY: The buffer is valid.
        unsafe { bindings::polynic_skb_iif(self.as_raw()) }
    }

    /// Whether a received frame was addressed to this host's own link-layer
    /// address (`PACKET_HOST`), as opposed to broadcast, multicast, or
    /// another host's address seen in promiscuous mode.
    pub fn is_to_host(&self) -> bool {
        // SAFETY: The buffer is valid.
        u32::from(unsafe { bindings::polynic_skb_pkt_type(self.as_raw()) }) == bindings::PACKET_HOST
    }

    /// Marks the start of the data as the start of the link-layer header.
    pub fn reset_mac_header(&mut self) {
        // SAFETY: The buffer is valid and the header is ours to change.
        unsafe { bindings::skb_reset_mac_header(self.as_raw()) };
    }

    /// The Ethernet header of a received frame (or of one whose MAC header
    /// was marked), if one is set and complete.
    pub fn eth_hdr(&self) -> Option<EthHdr> {
        let skb = self.as_raw();
        // SAFETY: The buffer is valid.
        let off = unsafe { bindings::polynic_skb_mac_offset(skb) };
        if off > 0 {
            return None;
        }
        let back = off.unsigned_abs() as usize;
        // The header may start before `data` (received frames) or at it.
        let avail = back + self.headlen() as usize;
        if back > self.headroom() as usize || avail < super::ethernet::HLEN {
            return None;
        }
        // SAFETY: `back` is within the headroom, so `[data - back, data + headlen)`
        // is initialised head memory; we read `HLEN` bytes of it.
        let bytes = unsafe {
            core::slice::from_raw_parts((*skb).data.sub(back), super::ethernet::HLEN)
        };
        EthHdr::parse(bytes)
    }

    /// Sends the buffer, which must start with a complete link-layer header,
    /// on `dev` (`dev_queue_xmit`). The buffer is consumed whatever happens.
    ///
    /// Fails with `ENOBUFS` if the device's queue dropped it, or with the
    /// error the stack reported (for example `ENETDOWN`).
    /// Must be called with interrupts enabled.
    pub fn transmit(mut self, dev: &NetDevice) -> Result<TxOutcome> {
        self.reset_mac_header();
        // SAFETY: `dev` is live for this call; the stack takes what it needs
        // while the buffer is in flight.
        unsafe { bindings::polynic_skb_set_dev(self.as_raw(), dev.as_raw()) };
        // SAFETY: We pass our reference, which `__dev_queue_xmit` consumes in
        // every case.
        let rc = unsafe { bindings::__dev_queue_xmit(self.into_raw(), core::ptr::null_mut()) };
        match rc {
            r if r == bindings::NET_XMIT_SUCCESS as i32 => Ok(TxOutcome::Queued),
            r if r == bindings::NET_XMIT_CN as i32 => Ok(TxOutcome::Congested),
            r if r == bindings::NET_XMIT_DROP as i32 => Err(ENOBUFS),
            r if r < 0 => Err(crate::error::Error::from_errno(r)),
            _ => Err(EIO),
        }
    }

    /// Frees the buffer as successfully consumed (not counted as a drop).
    pub fn consume(self) {
        // SAFETY: We own one reference and give it up.
        unsafe { bindings::consume_skb(self.into_raw()) };
    }
}

impl Drop for SkBuff {
    fn drop(&mut self) {
        // SAFETY: We own one reference and give it up.
        unsafe { bindings::kfree_skb(self.as_raw()) };
    }
}
