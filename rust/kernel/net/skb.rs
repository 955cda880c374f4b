// SPDX-License-Identifier: GPL-2.0

//! Socket buffers (`struct sk_buff`): the packets of the network stack.
//!
//! [`SkBuff`] owns one reference to a socket buffer. Its data is reached only
//! through bounds-checked byte slices of the valid linear area, so safe code
//! cannot read past the end of a packet or into another user's headroom.
//!
//! A buffer can be shared in two ways, and the type says which are ruled out:
//!
//! - *Shared* ([`Shared`]): other references to the same `struct sk_buff`
//!   exist (taps, a protocol handler's caller, `IFF_TX_SKB_SHARING` senders
//!   such as pktgen). Its header fields (data pointer, protocol, MAC header)
//!   must not change, and nothing may be written. Only reads are allowed.
//! - *Private* ([`Private`]): this is the only reference to the header, so
//!   header changes ([`SkBuff::pull`], [`SkBuff::set_protocol`],
//!   [`SkBuff::transmit`], ...) are allowed, but the data area may still be
//!   shared with clones, so the data must not be written.
//! - *Writable* ([`Writable`]): private, and the data area belongs to this
//!   buffer alone, so its bytes may be written ([`SkBuff::data_mut`],
//!   [`SkBuff::put`], [`SkBuff::push`]).
//!
//! Buffers the stack hands in are [`Shared`]; [`SkBuff::unshare`] makes a
//! private header (cloning if needed) and [`SkBuff::make_writable`] a
//! writable, linear buffer (copying if needed). New buffers are writable.
//!
//! C header: [`include/linux/skbuff.h`](srctree/include/linux/skbuff.h)

use super::{device::NetDevice, ethernet::{EthHdr, EtherType}};
use crate::{
    alloc::Flags,
    bindings,
    error::{code::*, to_result, Result},
    mm::shared_area::SharedArea,
};
use core::{marker::PhantomData, ptr::NonNull};

/// What a [`SkBuff`] may do, by what else may refer to it.
pub trait State: private::Sealed {}

/// Other references may exist: read only.
pub enum Shared {}
/// The only reference to its header: header changes allowed, data read only.
pub enum Private {}
/// Private, with a data area of its own: everything allowed.
pub enum Writable {}

/// States that own their header alone ([`Private`] and [`Writable`]).
pub trait Exclusive: State {}

mod private {
    pub trait Sealed {}
    impl Sealed for super::Shared {}
    impl Sealed for super::Private {}
    impl Sealed for super::Writable {}
}

impl State for Shared {}
impl State for Private {}
impl State for Writable {}
impl Exclusive for Private {}
impl Exclusive for Writable {}

/// An owned reference to a socket buffer, in state `S`.
///
/// Dropping it frees the reference as a *drop* (visible to drop monitors);
/// [`SkBuff::consume`] frees it as normal consumption.
///
/// # Invariants
///
/// `self.0` points at a valid `struct sk_buff` of which this value owns one
/// reference (`skb->users`). If `S` is [`Private`] or [`Writable`], it is the
/// only reference (`skb->users == 1`, and no one else holds the pointer); it
/// stays the only one because no operation here takes another reference to
/// the same header. If `S` is [`Writable`], the data area is not shared with
/// clones (`!skb_cloned`); it stays so because no operation on a writable
/// buffer clones it.
pub struct SkBuff<S: State = Shared>(NonNull<bindings::sk_buff>, PhantomData<S>);

// SAFETY: An skb reference may be handed to and freed from any context; the
// stack does so constantly. The state only restricts what this reference does.
unsafe impl<S: State> Send for SkBuff<S> {}

/// What [`SkBuff::transmit`] did with a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxOutcome {
    /// Accepted by the device or its queue.
    Queued,
    /// Accepted, but the queue is congested: the sender should slow down.
    Congested,
}

impl<S: State> SkBuff<S> {
    /// Re-types the reference; the caller upholds the invariant of `T`.
    fn retype<T: State>(self) -> SkBuff<T> {
        let ptr = self.0;
        core::mem::forget(self);
        SkBuff(ptr, PhantomData)
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

    /// Forgets what this reference may do beyond reading.
    pub fn into_shared(self) -> SkBuff<Shared> {
        self.retype()
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

    /// Whether other references to this header exist now (`skb_shared`).
    /// Only meaningful for a [`Shared`] buffer: the others are never shared.
    pub fn has_other_users(&self) -> bool {
        // SAFETY: The buffer is valid.
        unsafe { bindings::skb_shared(self.as_raw()) != 0 }
    }

    /// Whether the data area is shared with clones (`skb_cloned`); never
    /// for a [`Writable`] buffer.
    pub fn is_cloned(&self) -> bool {
        // SAFETY: The buffer is valid.
        unsafe { bindings::skb_cloned(self.as_raw()) != 0 }
    }

    /// Whether the buffer holds a GSO super-packet (a GRO-merged receive or
    /// a segmentation-offloaded send): its network header's length fields
    /// describe the whole, which leaves as several frames.
    pub fn is_gso(&self) -> bool {
        // SAFETY: The buffer is valid; the helper reads `gso_size`, which
        // holders of a shared buffer do not change.
        unsafe { bindings::polynic_skb_is_gso(self.as_raw()) }
    }

    /// Whether each segment of this GSO buffer fits a network MTU of `mtu`
    /// (`skb_gso_validate_network_len`); a buffer that is not GSO fits if
    /// its length does.
    pub fn segments_fit(&self, mtu: u32) -> bool {
        if !self.is_gso() {
            return self.len() <= mtu;
        }
        // SAFETY: The buffer is valid and a GSO one; the check only reads it.
        unsafe { bindings::skb_gso_validate_network_len(self.as_raw(), mtu) }
    }

    /// The linear data, `headlen()` bytes from `skb->data`.
    pub fn data(&self) -> &[u8] {
        let skb = self.as_raw();
        // Writers need a `Writable` buffer (sole user of its data) and `&mut self`.
        // SAFETY: `data` points at `headlen` initialised bytes, unwritten while borrowed.
        unsafe { core::slice::from_raw_parts((*skb).data, self.headlen() as usize) }
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

    /// As [`SkBuff::copy_bits`], and returns the sum of the bytes copied
    /// (`skb_copy_and_csum_bits`): a device computing a checksum while it
    /// copies. `offset` should be even, as the start of a summed range is.
    pub fn copy_and_sum(&self, offset: u32, out: &mut [u8]) -> Result<super::checksum::PartialSum> {
        let len = u32::try_from(out.len()).map_err(|_| EINVAL)?;
        if offset.checked_add(len).is_none_or(|end| end > self.len()) || len > i32::MAX as u32 {
            return Err(EINVAL);
        }
        // SAFETY: The range lies inside the buffer (checked above) and `out`
        // is valid for `len` bytes; the buffer is only read.
        let sum = unsafe {
            bindings::skb_copy_and_csum_bits(self.as_raw(), offset as i32, out.as_mut_ptr(), len as i32)
        };
        Ok(super::checksum::PartialSum::from_raw(sum))
    }

    /// The checksum the stack left for the device to compute
    /// (`CHECKSUM_PARTIAL`, on a device with checksum offload), if any.
    pub fn checksum_request(&self) -> Option<ChecksumRequest> {
        let (mut start, mut field) = (0u32, 0u32);
        // SAFETY: The buffer is valid; the helper only reads it.
        let wanted = unsafe { bindings::polynic_skb_csum_request(self.as_raw(), &mut start, &mut field) };
        wanted.then_some(ChecksumRequest { start, field })
    }

    /// Whether the transport checksum needs no check: the device verified
    /// it (`CHECKSUM_UNNECESSARY`), or a sender on this host left it to be
    /// computed and the frame crossed no wire (`CHECKSUM_PARTIAL`, whose
    /// checksum field holds only the pseudo-header's sum). Whoever hands
    /// such a frame's bytes on must say so, or they look corrupt.
    pub fn checksum_trusted(&self) -> bool {
        // SAFETY: The buffer is valid; the helper only reads it.
        unsafe { bindings::polynic_skb_csum_trusted(self.as_raw()) }
    }

    /// The link-layer protocol (`skb->protocol`).
    pub fn protocol(&self) -> EtherType {
        // SAFETY: The buffer is valid.
        EtherType(unsafe { bindings::polynic_skb_protocol(self.as_raw()) })
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

    /// Whether the frame carries an 802.1Q tag taken out of its data (by
    /// the device or by the stack, which then hands a receive handler the
    /// untagged frame even when no VLAN device on this one claims the tag).
    pub fn has_vlan_tag(&self) -> bool {
        // SAFETY: The buffer is valid.
        unsafe { bindings::polynic_skb_vlan_tag_present(self.as_raw()) }
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

    /// Makes the buffer private (its own header and data area) and linear,
    /// copying whatever is shared. May allocate.
    pub fn make_writable(self, flags: Flags) -> Result<SkBuff<Writable>> {
        let mut skb = self.unshare_header(flags)?;
        // SAFETY: `skb` is the only reference to its header (`unshare_header`),
        // which `skb_unclone` may give a data area of its own.
        to_result(unsafe { bindings::skb_unclone(skb.as_raw(), flags.as_raw()) })?;
        skb.linearize()?;
        // INVARIANT: Private, and `skb_unclone` succeeded, so the data area
        // is no longer shared; `linearize` keeps it so.
        Ok(skb.retype())
    }

    /// A private reference to a buffer with this data: this one if no one
    /// else refers to it, else a clone (`skb_share_check`).
    fn unshare_header(self, flags: Flags) -> Result<SkBuff<Private>> {
        // SAFETY: We pass our reference; `skb_share_check` returns a private one
        // (a clone, dropping ours, if ours was shared) or null after freeing ours.
        let skb = unsafe { bindings::skb_share_check(self.into_raw(), flags.as_raw()) };
        // INVARIANT: `skb_share_check` returned the only reference to its header.
        Ok(SkBuff(NonNull::new(skb).ok_or(ENOMEM)?, PhantomData))
    }

    /// Frees the buffer as successfully consumed (not counted as a drop).
    /// Any context: with interrupts off the free is deferred to softirq.
    pub fn consume(self) {
        // SAFETY: We own one reference and give it up; the `_any` variant is
        // valid in every context.
        unsafe { bindings::dev_kfree_skb_any_reason(self.into_raw(), CONSUMED) };
    }
}

impl SkBuff<Shared> {
    /// Takes ownership of a reference, which may be shared.
    ///
    /// # Safety
    ///
    /// `ptr` must point at a valid `struct sk_buff` and the caller must own
    /// one reference to it, which passes to the returned value.
    pub unsafe fn from_raw(ptr: *mut bindings::sk_buff) -> SkBuff<Shared> {
        // SAFETY: Non-null by the caller's guarantee.
        SkBuff(unsafe { NonNull::new_unchecked(ptr) }, PhantomData)
    }

    /// A private reference to this buffer (this one if no one else refers to
    /// it, else a clone with its own header; the data area is shared either
    /// way). Fails with `ENOMEM` (the buffer is then dropped).
    pub fn unshare(self, flags: Flags) -> Result<SkBuff<Private>> {
        self.unshare_header(flags)
    }

    /// This reference as a private one if no one else refers to the buffer;
    /// otherwise it is handed back.
    pub fn try_private(self) -> Result<SkBuff<Private>, SkBuff<Shared>> {
        if self.has_other_users() {
            return Err(self);
        }
        // INVARIANT: We hold the only reference and nothing can take another
        // without one.
        Ok(self.retype())
    }
}

impl SkBuff<Private> {
    /// Splits a received GSO buffer (a TSO send from this host, or frames a
    /// device merged with GRO) into the frames it stands for, in order, each
    /// starting at its link-layer header, for a consumer that takes frames
    /// no larger than the wire's. The segments keep the buffer's checksum
    /// state (left to compute, or verified). The buffer is consumed, and on
    /// failure dropped.
    pub fn segment_received(self) -> Result<Segments> {
        let raw = self.into_raw();
        // SAFETY: `raw` is a valid buffer whose header we alone refer to
        // (`Private`), as the helper's push and the segmentation require.
        let segs = unsafe { bindings::polynic_skb_segment_rx(raw) };
        let segs = crate::error::from_err_ptr(segs);
        if !matches!(segs, Ok(p) if p == raw) {
            // The segments hold their own references to the data (or the
            // call failed): the original goes.
            // SAFETY: We own the reference `raw`, passed on once.
            unsafe { bindings::consume_skb(raw) };
        }
        match segs {
            // INVARIANT: A new list of buffers we alone refer to (or the
            // original, ours).
            Ok(head) if !head.is_null() => Ok(Segments(head)),
            Ok(_) => Err(EINVAL),
            Err(e) => Err(e),
        }
    }

    /// Removes a `len`-byte tag between a received frame's Ethernet header
    /// and what follows (the data must start at the tag, as it does in a
    /// receive handler), as VLAN untagging does: afterwards the frame reads
    /// as if sent without it, its ethertype and protocol are `inner`, and
    /// the network header starts at the data, so the frame can go on to
    /// the stack or be demultiplexed again. A verified checksum over the
    /// received bytes is adjusted. A data area shared with clones is copied
    /// first. `EINVAL` if the data does not start right after an Ethernet
    /// header or is shorter than the tag; `ENOMEM`.
    pub fn remove_tag(&mut self, len: u32, inner: EtherType) -> Result {
        // The helper copies a cloned data area before writing it, and checks
        // that the tag and the Ethernet header are where it moves them.
        // SAFETY: The buffer is valid and its header ours alone (`Private`).
        to_result(unsafe { bindings::polynic_skb_remove_tag(self.as_raw(), len, inner.0) })
    }

    /// A new reference with its own header on the same data (`skb_clone`).
    /// Both see the data read-only until made writable.
    ///
    /// Only on a private buffer: `skb_clone` writes the original's header
    /// (its cloned flag, and the companion count of a fast clone) without
    /// atomics, so two holders of a shared buffer cloning it at once would
    /// race. ([`SkBuff::unshare`] clones a shared buffer the way the stack
    /// does it, `skb_share_check`.) `SkBuff` is not `Sync`, so `&self` here is
    /// the only access.
    pub fn try_clone(&self, flags: Flags) -> Result<SkBuff<Private>> {
        // Marking our data as cloned breaks nothing `Private` promises.
        // SAFETY: Valid buffer, header ours alone; returns one reference or null.
        let c = unsafe { bindings::skb_clone(self.as_raw(), flags.as_raw()) };
        // INVARIANT: A new clone has one user, its header is ours alone.
        Ok(SkBuff(NonNull::new(c).ok_or(ENOMEM)?, PhantomData))
    }
}

impl<S: Exclusive> SkBuff<S> {
    /// Forgets that the data area is private (if it was).
    pub fn into_private(self) -> SkBuff<Private> {
        self.retype()
    }

    /// Removes `len` bytes from the front of the linear data. Fails with
    /// `EINVAL` if there are fewer.
    pub fn pull(&mut self, len: u32) -> Result {
        if len > self.headlen() {
            return Err(EINVAL);
        }
        // SAFETY: At least `len` linear bytes exist, so the data pointer stays in
        // the linear area; the header is ours alone (`S: Exclusive`).
        unsafe { bindings::skb_pull(self.as_raw(), len) };
        Ok(())
    }

    /// Pulls all paged data into the linear area. May allocate; a cloned
    /// data area is copied, so other clones are unaffected.
    pub fn linearize(&mut self) -> Result {
        // A cloned data area gets a new head, so other clones are unaffected.
        // SAFETY: The header is ours alone (`S: Exclusive`), as `skb_linearize` needs.
        to_result(unsafe { bindings::skb_linearize(self.as_raw()) })
    }

    /// Sets the link-layer protocol.
    pub fn set_protocol(&mut self, proto: EtherType) {
        // SAFETY: The buffer is valid and its header ours alone.
        unsafe { bindings::polynic_skb_set_protocol(self.as_raw(), proto.0) };
    }

    /// Marks the start of the data as the start of the link-layer header.
    pub fn reset_mac_header(&mut self) {
        // SAFETY: The buffer is valid and its header ours alone.
        unsafe { bindings::skb_reset_mac_header(self.as_raw()) };
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
        // while the buffer is in flight. The header is ours alone.
        unsafe { bindings::polynic_skb_set_dev(self.as_raw(), dev.as_raw()) };
        // SAFETY: We pass our reference, which `__dev_queue_xmit` consumes in
        // every case; the stack changes the header, which is ours alone.
        let rc = unsafe { bindings::__dev_queue_xmit(self.into_raw(), core::ptr::null_mut()) };
        match rc {
            r if r == bindings::NET_XMIT_SUCCESS as i32 => Ok(TxOutcome::Queued),
            r if r == bindings::NET_XMIT_CN as i32 => Ok(TxOutcome::Congested),
            r if r == bindings::NET_XMIT_DROP as i32 => Err(ENOBUFS),
            r if r < 0 => Err(crate::error::Error::from_errno(r)),
            _ => Err(EIO),
        }
    }

    /// Readies a received buffer to be sent on by a router, as the stack's
    /// own forwarding does: a checksum over the received bytes
    /// (`CHECKSUM_COMPLETE`) no longer holds once a header changes, so it is
    /// forgotten (`skb_forward_csum`), and the receive timestamp is cleared.
    pub fn prepare_to_forward(&mut self) {
        // SAFETY: The header is ours alone (`Exclusive`); the helper changes
        // only its checksum state and timestamp.
        unsafe { bindings::polynic_skb_prepare_to_forward(self.as_raw()) };
    }

    /// A writable buffer with this data: this one if its data area is not
    /// shared with clones, else a copy of the header's data area
    /// (`skb_unclone`). Paged data stays paged.
    pub fn into_writable(self, flags: Flags) -> Result<SkBuff<Writable>> {
        // SAFETY: The header is ours alone, which `skb_unclone` needs.
        to_result(unsafe { bindings::skb_unclone(self.as_raw(), flags.as_raw()) })?;
        // INVARIANT: Private, and the data area is no longer shared.
        Ok(self.retype())
    }
}

/// Where a device must compute a checksum the stack left to it (a device
/// with checksum offload, `NETIF_F_HW_CSUM`): the sum
/// runs from `start` (from the start of the data) to the end of the frame,
/// and its folded value goes in the 16-bit field `field` bytes after
/// `start` (which holds the pseudo-header's sum meanwhile).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChecksumRequest {
    /// Where the summed range starts, from the start of the data.
    pub start: u32,
    /// Where the checksum field is, from `start`.
    pub field: u32,
}

impl SkBuff<Writable> {
    /// Records the sum a device computed over everything after the link
    /// header of a received frame (`CHECKSUM_COMPLETE`), so that the stack
    /// validates checksums without summing again.
    pub fn set_checksum_complete(&mut self, sum: super::checksum::PartialSum) {
        // SAFETY: The buffer's header is ours alone (`Writable`).
        unsafe { bindings::polynic_skb_set_csum_complete(self.as_raw(), sum.raw()) };
    }

    /// Hands on a checksum still to be computed (`CHECKSUM_PARTIAL`,
    /// `skb_partial_csum_set`), as `req` describes it from the start of the
    /// data. A virtual device whose wire cannot corrupt a frame passes the
    /// sending stack's request along like this (as veth does) instead of
    /// computing the sum on one side and checking it on the other; the
    /// receiving stack takes the frame as verified, and a device the frame
    /// leaves through computes the sum then. `EINVAL` if the field does not
    /// lie inside the frame's linear data.
    pub fn set_checksum_partial(&mut self, req: ChecksumRequest) -> Result {
        let start = u16::try_from(req.start).map_err(|_| EINVAL)?;
        let field = u16::try_from(req.field).map_err(|_| EINVAL)?;
        // The C function checks the range against the linear data and
        // changes nothing if it does not fit.
        // SAFETY: The buffer's header is ours alone (`Writable`).
        let set = unsafe { bindings::skb_partial_csum_set(self.as_raw(), start, field) };
        if set { Ok(()) } else { Err(EINVAL) }
    }

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
    pub fn alloc(headroom: u32, size: u32, flags: Flags) -> Result<SkBuff<Writable>> {
        let total = headroom.checked_add(size).ok_or(EINVAL)?;
        // SAFETY: `alloc_skb` may be called with any size and flags; it
        // returns a new buffer with one reference, or null.
        let skb = unsafe { bindings::alloc_skb(total, flags.as_raw()) };
        // INVARIANT: A new buffer: one user, a data area of its own.
        let skb = SkBuff(NonNull::new(skb).ok_or(ENOMEM)?, PhantomData);
        // SAFETY: The buffer is new and empty, so reserving headroom within
        // its size is allowed.
        unsafe { bindings::skb_reserve(skb.as_raw(), headroom as i32) };
        Ok(skb)
    }

    /// Allocates a buffer for sending `size` bytes of link-layer frame on
    /// `dev`, with the headroom the device asks for.
    pub fn alloc_for(dev: &NetDevice, size: u32, flags: Flags) -> Result<SkBuff<Writable>> {
        Self::alloc(dev.ll_reserved_space(), size, flags)
    }

    /// The linear data, writable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        let skb = self.as_raw();
        // Type invariant: the data area belongs to this buffer alone.
        // SAFETY: `data` points at `headlen` initialised bytes of it, borrowed via `&mut self`.
        unsafe { core::slice::from_raw_parts_mut((*skb).data, self.headlen() as usize) }
    }

    /// Appends `len` bytes to the data and returns them, zeroed. Fails with
    /// `ENOSPC` if the tailroom is too small or the buffer is not linear.
    pub fn put(&mut self, len: u32) -> Result<&mut [u8]> {
        if len > self.tailroom() || self.headlen() != self.len() {
            return Err(ENOSPC);
        }
        // SAFETY: The buffer is writable and linear with at least `len` bytes
        // of tailroom, so `skb_put` cannot overrun.
        let p = unsafe { bindings::skb_put(self.as_raw(), len) }.cast::<u8>();
        // Zeroing the `len` bytes just added first makes the slice initialised.
        // SAFETY: `p` points at those bytes, inside the data area that is ours alone.
        Ok(unsafe {
            core::ptr::write_bytes(p, 0, len as usize);
            core::slice::from_raw_parts_mut(p, len as usize)
        })
    }

    /// Makes the first `len` bytes of the data linear (in the header's data
    /// area), pulling them from pages if needed (`pskb_may_pull`), so that
    /// [`Self::data_mut`] covers them. `EINVAL` if the buffer is shorter,
    /// `ENOMEM` if the pull could not allocate.
    pub fn pull_into_head(&mut self, len: u32) -> Result {
        if len > self.len() {
            return Err(EINVAL);
        }
        // SAFETY: The data is ours alone (`Writable`): a pull that
        // reallocates the head keeps it so.
        if unsafe { bindings::pskb_may_pull(self.as_raw(), len) } {
            Ok(())
        } else {
            Err(ENOMEM)
        }
    }

    /// Cuts the data to `len` bytes (link-layer padding after a packet's
    /// end, say), keeping a received checksum valid (`pskb_trim_rcsum`).
    /// Longer than the data is a no-op; `ENOMEM` if paged data could not be
    /// trimmed.
    pub fn trim(&mut self, len: u32) -> Result {
        // SAFETY: The data is ours alone; the helper trims only when `len`
        // is below the length.
        to_result(unsafe { bindings::pskb_trim_rcsum(self.as_raw(), len) })
    }

    /// Prepends `len` bytes like [`Self::push`], first making room for
    /// `len + headroom` bytes in front of the data if there is not enough
    /// (`skb_cow_head`): for a link-layer header on a device whose headroom
    /// needs differ from those of the device the buffer came from.
    pub fn push_with_room(&mut self, len: u32, headroom: u32) -> Result<&mut [u8]> {
        let want = len.checked_add(headroom).ok_or(EINVAL)?;
        if self.headroom() < want {
            // SAFETY: The buffer is ours alone; `skb_cow_head` reallocates
            // the head with at least `want` bytes in front of the data.
            to_result(unsafe { bindings::skb_cow_head(self.as_raw(), want) })?;
        }
        self.push(len)
    }

    /// Prepends `len` bytes to the data and returns them, zeroed. Fails with
    /// `ENOSPC` if the headroom is too small.
    pub fn push(&mut self, len: u32) -> Result<&mut [u8]> {
        if len > self.headroom() {
            return Err(ENOSPC);
        }
        // SAFETY: The buffer is writable with at least `len` bytes of
        // headroom, so `skb_push` cannot underrun.
        let p = unsafe { bindings::skb_push(self.as_raw(), len) }.cast::<u8>();
        // Zeroing the `len` bytes just added first makes the slice initialised.
        // SAFETY: `p` points at those bytes, inside the data area that is ours alone.
        Ok(unsafe {
            core::ptr::write_bytes(p, 0, len as usize);
            core::slice::from_raw_parts_mut(p, len as usize)
        })
    }
}

/// Copies between socket buffers and memory shared with user space: the
/// bytes are moved by C (`skb_copy_bits`, `skb_store_bits`), never through
/// Rust references to the shared side, which user space may be writing.
/// They are `unsafe` because the area also offers atomic words
/// ([`SharedArea::word`]): a plain copy must not cover bytes the kernel
/// accesses atomically at the same time.
impl<S: State> SkBuff<S> {
    /// Copies the whole received frame, from its link-layer header (which a
    /// receive handler finds before `data`) to its end, into `area` at
    /// `offset`. Returns the frame's length; `EMSGSIZE` if it is longer than
    /// `max`, `EINVAL` if the range is outside the area or the buffer has no
    /// link-layer header within its headroom.
    ///
    /// # Safety
    ///
    /// No kernel code may access `[offset, offset + max)` of `area` through
    /// [`SharedArea::word`] during the call.
    pub unsafe fn copy_frame_to_area(&self, area: &SharedArea, offset: usize, max: usize) -> Result<usize> {
        // SAFETY: The buffer is valid.
        let off = unsafe { bindings::polynic_skb_mac_offset(self.as_raw()) };
        if off > 0 || off.unsigned_abs() > self.headroom() {
            return Err(EINVAL);
        }
        let back = off.unsigned_abs() as usize;
        let len = back.checked_add(self.len() as usize).ok_or(EINVAL)?;
        if len > max {
            return Err(EMSGSIZE);
        }
        let dst = area.raw_range(offset, len)?;
        // The copy starts `back` bytes before `data` (within the headroom,
        // checked above) and runs `len` bytes: the header plus `len()`, to the
        // buffer's end. `dst` covers `len` bytes of the area, written by C.
        // SAFETY: Both ranges are in bounds; the caller keeps atomic accesses off `dst`.
        to_result(unsafe { bindings::skb_copy_bits(self.as_raw(), -(back as i32), dst.cast(), len as i32) })?;
        Ok(len)
    }
}

impl SkBuff<Writable> {
    /// Appends `len` bytes copied from `area` at `offset`. `ENOSPC` if the
    /// tailroom is too small or the buffer is not linear, `EINVAL` if the
    /// range is outside the area. What user space writes meanwhile may end
    /// up in the copy: check the buffer's bytes, not the area's, afterwards.
    ///
    /// # Safety
    ///
    /// No kernel code may write `[offset, offset + len)` of `area` through
    /// [`SharedArea::word`] during the call.
    pub unsafe fn put_from_area(&mut self, area: &SharedArea, offset: usize, len: u32) -> Result {
        let src = area.raw_range(offset, len as usize)?;
        if len > self.tailroom() || self.headlen() != self.len() {
            return Err(ENOSPC);
        }
        let at = self.len() as i32;
        // SAFETY: The buffer is writable and linear with `len` bytes of
        // tailroom, so `skb_put` cannot overrun.
        unsafe { bindings::skb_put(self.as_raw(), len) };
        // The `len` bytes at `at` were just added to the linear data, ours
        // alone; `src` covers `len` bytes of the area, read by C.
        // SAFETY: Both ranges are in bounds; the caller keeps atomic writes off `src`.
        to_result(unsafe { bindings::skb_store_bits(self.as_raw(), at, src.cast(), len as i32) })
    }
}

/// Free reasons: consumed (handled) and a drop without a more precise reason.
const CONSUMED: bindings::skb_drop_reason = bindings::skb_drop_reason_SKB_CONSUMED;
const DROPPED: bindings::skb_drop_reason = bindings::skb_drop_reason_SKB_DROP_REASON_NOT_SPECIFIED;

/// Dropping a buffer frees it as a drop. A buffer is `Send` and may be
/// dropped where interrupts are off (a driver's transmit under netpoll, code
/// under an interrupt-disabling lock), where `kfree_skb` must not run, so the
/// free goes through `dev_kfree_skb_any`, which defers it to softirq there.
/// The segments of a buffer, in order ([`SkBuff::segment_received`]).
///
/// # Invariants
///
/// `self.0` is null or the head of a list of buffers, each with one
/// reference owned here and its header referred to by nothing else.
pub struct Segments(*mut bindings::sk_buff);

impl Iterator for Segments {
    type Item = SkBuff<Private>;

    fn next(&mut self) -> Option<SkBuff<Private>> {
        // SAFETY: By the invariant `self.0` is a list we own; the helper
        // detaches its first buffer and advances the head.
        let first = unsafe { bindings::polynic_skb_list_pop(&mut self.0) };
        // INVARIANT: The detached buffer's reference passes to the caller;
        // the rest of the list stays ours.
        Some(SkBuff(NonNull::new(first)?, PhantomData))
    }
}

impl Drop for Segments {
    fn drop(&mut self) {
        // SAFETY: By the invariant, a list (or null) whose references we own.
        unsafe { bindings::polynic_skb_list_free(self.0) };
    }
}

impl<S: State> Drop for SkBuff<S> {
    fn drop(&mut self) {
        // SAFETY: We own one reference and give it up; the `_any` variant is
        // valid in every context.
        unsafe {
            bindings::dev_kfree_skb_any_reason(self.as_raw(), DROPPED)
        };
    }
}
