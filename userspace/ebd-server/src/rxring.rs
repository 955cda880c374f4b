//! A packet socket's receive ring (`PACKET_RX_RING`, `TPACKET_V2`): frame
//! slots in memory shared with the kernel, which copies each received frame
//! into the next free slot and hands it over by setting its status word.
//!
//! Why a ring rather than `recvmmsg`: a write frame's payload then reaches
//! the server with the kernel's own `memcpy` (skb to slot) instead of a
//! copy to user memory, and no system call is made per batch while frames
//! keep arriving. Under emulated CPUs with fast-string moves, where a copy
//! to user memory costs several times a kernel `memcpy` of the same bytes,
//! that receive copy was a quarter of the server's time in sequential
//! writes (see `docs/ebd.md`).
//!
//! Slots are taken in ring order, oldest first, and handed back together
//! when the [`Taken`] batch that holds them is dropped: the frames a batch
//! lends are borrowed from it, so none is read after the kernel may reuse
//! its slot.

use std::{
    io,
    mem::{offset_of, size_of},
    os::fd::{AsRawFd, BorrowedFd},
    ptr::NonNull,
    sync::atomic::{AtomicU32, Ordering},
};

/// Bytes of one block of slots, which the kernel allocates as one chunk of
/// pages (order 5 with 4 KiB pages), or from vmalloc when memory is
/// fragmented.
pub const BLOCK_SIZE: usize = 128 * 1024;

/// Where the kernel puts a frame's first (Ethernet) byte in its slot: after
/// the slot header and address, placed so that the network header after a
/// 14-byte link header is 16-aligned ([`libc::TPACKET_ALIGNMENT`]), as
/// `tpacket_rcv` does for a socket without reserve.
const MAC_OFFSET: usize = align(libc::TPACKET2_HDRLEN + 16) - 14;

/// Where the slot's link-layer address (`sockaddr_ll`) starts.
const ADDRESS_OFFSET: usize = align(size_of::<libc::tpacket2_hdr>());

const fn align(x: usize) -> usize {
    (x + libc::TPACKET_ALIGNMENT - 1) & !(libc::TPACKET_ALIGNMENT - 1)
}

/// The slot size that holds frames of up to `max_frame` bytes whole.
pub const fn slot_size(max_frame: usize) -> usize {
    align(MAC_OFFSET + max_frame)
}

/// A receive ring mapped into this process.
///
/// Type invariant: `base..base + len` is the socket's ring, mapped shared
/// and writable, of `slots` slots of `slot_size` bytes (at least
/// `slot_size(max_frame)`) laid out in blocks of
/// [`BLOCK_SIZE`] (`per_block` slots each, the tail of a block unused), for
/// as long as the value lives; `next < slots`. A slot whose status has
/// [`libc::TP_STATUS_USER`] set belongs to this process until its status is
/// stored back as [`libc::TP_STATUS_KERNEL`]; the kernel does not write it
/// meanwhile.
#[derive(Debug)]
pub struct RxRing {
    base: NonNull<u8>,
    len: usize,
    slot_size: usize,
    per_block: usize,
    slots: usize,
    max_frame: usize,
    /// The oldest slot not yet taken.
    next: usize,
}

// SAFETY: The ring is plain memory shared with the kernel; the value owns
// its mapping and may be used from any thread (one at a time: taking slots
// needs `&mut`).
unsafe impl Send for RxRing {}

/// One received frame, borrowed from a [`Taken`] batch.
#[derive(Clone, Copy, Debug)]
pub struct Received<'t> {
    /// The frame from its Ethernet header, at most the slot's room.
    pub data: &'t [u8],
    /// The frame was longer than its slot: `data` is its beginning only.
    pub truncated: bool,
    /// The host itself sent it (`PACKET_OUTGOING`).
    pub outgoing: bool,
}

/// Slots taken from the ring, handed back to the kernel when dropped.
pub struct Taken<'r> {
    ring: &'r mut RxRing,
    first: usize,
    count: usize,
}

impl RxRing {
    /// Sets up a ring of `bytes` (rounded down to whole blocks, at least
    /// one) on the packet socket `fd`, in slots that each hold a frame of up
    /// to `max_frame` bytes, and maps it. Slots are sized for the link's
    /// frames, not for the largest possible: each slot holds one frame,
    /// whatever its size, so on a link with small frames many more fit.
    pub fn attach(fd: BorrowedFd<'_>, bytes: usize, max_frame: usize) -> io::Result<Self> {
        let slot_size = slot_size(max_frame);
        let per_block = BLOCK_SIZE / slot_size;
        if per_block == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "frames larger than a ring block"));
        }
        let blocks = (bytes / BLOCK_SIZE).max(1);
        let slots = blocks * per_block;
        let too_big = || io::Error::new(io::ErrorKind::InvalidInput, "receive ring too large");
        let len = blocks.checked_mul(BLOCK_SIZE).ok_or_else(too_big)?;
        let req = libc::tpacket_req {
            tp_block_size: BLOCK_SIZE as u32,
            tp_block_nr: u32::try_from(blocks).map_err(|_| too_big())?,
            tp_frame_size: slot_size as u32,
            tp_frame_nr: u32::try_from(slots).map_err(|_| too_big())?,
        };
        let version = libc::tpacket_versions::TPACKET_V2 as libc::c_int;
        set_opt(fd, libc::PACKET_VERSION, &version)?;
        set_opt(fd, libc::PACKET_RX_RING, &req)?;
        // SAFETY: A fresh shared mapping of the socket's ring, of the size
        // just set up; nothing else in this process refers to that range.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(base.cast()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(RxRing { base, len, slot_size, per_block, slots, max_frame, next: 0 })
    }

    /// Slots in the ring.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// The longest frame the ring was sized for (its slots hold that
    /// whole, and up to 15 bytes more).
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    fn slot(&self, k: usize) -> *mut u8 {
        let at = (k / self.per_block) * BLOCK_SIZE + (k % self.per_block) * self.slot_size;
        // SAFETY: `k < slots`, so `at + slot_size <= len` (type invariant:
        // every slot lies in its block, every block in the mapping).
        unsafe { self.base.as_ptr().add(at) }
    }

    fn status(&self, k: usize) -> &AtomicU32 {
        // SAFETY: The slot starts with its `tpacket2_hdr`, whose first field
        // is the 32-bit status word, 4-aligned (slots are 16-aligned in a
        // page-aligned mapping). The kernel writes it concurrently, so it is
        // only reached as an atomic.
        unsafe { &*self.slot(k).add(offset_of!(libc::tpacket2_hdr, tp_status)).cast::<AtomicU32>() }
    }

    fn is_ours(&self, k: usize) -> bool {
        // Acquire: the frame's bytes, written before the kernel set the
        // status (it orders them with a write barrier), are seen.
        self.status(k).load(Ordering::Acquire) & libc::TP_STATUS_USER != 0
    }

    /// Whether the oldest slot not yet taken holds a frame.
    pub fn ready(&self) -> bool {
        self.is_ours(self.next)
    }

    /// Takes up to `max` received frames, oldest first, without waiting
    /// (none if no frame has arrived).
    pub fn take(&mut self, max: usize) -> Taken<'_> {
        let first = self.next;
        let mut count = 0;
        while count < max.min(self.slots) && self.is_ours((first + count) % self.slots) {
            count += 1;
        }
        self.next = (first + count) % self.slots;
        Taken { ring: self, first, count }
    }

    fn frame(&self, k: usize) -> Received<'_> {
        let slot = self.slot(k);
        // SAFETY: Slot `k` is ours (taken, not yet handed back), so the
        // kernel does not write it; its header lies at its start.
        let hdr = unsafe { slot.cast::<libc::tpacket2_hdr>().read() };
        // SAFETY: As above; the address follows the header, in the slot.
        let pkttype = unsafe { slot.add(ADDRESS_OFFSET + offset_of!(libc::sockaddr_ll, sll_pkttype)).read() };
        // The kernel's offsets are checked all the same: a slice never
        // leaves the slot.
        let start = usize::from(hdr.tp_mac).min(self.slot_size);
        let len = (hdr.tp_snaplen as usize).min(self.slot_size - start);
        // SAFETY: `[start, start + len)` lies in slot `k`, which is ours for
        // as long as the batch lending the slice lives, and holds bytes the
        // kernel wrote before handing the slot over.
        let data = unsafe { std::slice::from_raw_parts(slot.add(start), len) };
        Received { data, truncated: (hdr.tp_len as usize) > len, outgoing: pkttype == libc::PACKET_OUTGOING }
    }
}

impl Drop for RxRing {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the range is mapped; every slice of
        // it borrowed the ring, so none outlives it.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

impl Taken<'_> {
    /// The frames, oldest first.
    pub fn frames(&self) -> impl Iterator<Item = Received<'_>> + '_ {
        (0..self.count).map(|i| self.ring.frame((self.first + i) % self.ring.slots))
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        for i in 0..self.count {
            // Release: every read of the frame happened before the kernel
            // may see the slot as free and write it.
            self.ring.status((self.first + i) % self.ring.slots).store(libc::TP_STATUS_KERNEL, Ordering::Release);
        }
    }
}

fn set_opt<T>(fd: BorrowedFd<'_>, opt: libc::c_int, v: &T) -> io::Result<()> {
    // SAFETY: `v` is a live value of the size passed, only read.
    let rc = unsafe {
        libc::setsockopt(fd.as_raw_fd(), libc::SOL_PACKET, opt, (v as *const T).cast(), size_of::<T>() as u32)
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_hold_the_largest_frame_whole_and_fill_their_blocks() {
        // tpacket_rcv puts the MAC header at 66 for TPACKET_V2 (52-byte
        // header and address, network header 16-aligned at 80).
        assert_eq!(MAC_OFFSET, 66);
        assert_eq!(ADDRESS_OFFSET, 32);
        for (frame, slot, per_block) in [(9000 + 18, 9088, 14), (1500 + 18, 1584, 82), (9280, 9360, 14)] {
            assert!(slot_size(frame) >= 66 + frame);
            assert_eq!(slot_size(frame), slot);
            assert_eq!(BLOCK_SIZE / slot, per_block);
        }
    }
}
