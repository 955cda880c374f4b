// SPDX-License-Identifier: GPL-2.0

//! Device packet memory: the NICs' own RAM, apart from host memory.
//!
//! A pair's two NICs share one arena, cut into 256-byte chunks; a frame
//! takes a run of contiguous chunks (a [`Slot`]). Each NIC has two pools
//! with a quota each, receive and transmit, so that frames waiting to be
//! received can never starve transmission, nor the reverse. The wire moves
//! a frame from the sender's transmit pool to the receiver's receive pool by
//! moving its charge ([`DevMem::move_to`]): a real wire costs no bus time,
//! and copying here would only add emulator CPU.
//!
//! Exhaustion is a counted failure, never a wait.

use kernel::{net::skb::ChecksumRequest, new_spinlock_bh, prelude::*, sync::SpinLockBh};

/// Bytes per chunk.
pub(crate) const CHUNK: u32 = 256;

/// The pools of one NIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pool {
    /// Frames arrived from the wire, until received by the host.
    Rx = 0,
    /// Frames from the host, until they leave on the wire.
    Tx = 1,
}

/// Who a slot is charged to: NIC 0 or 1 of the pair, and a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Owner {
    pub(crate) nic: usize,
    pub(crate) pool: Pool,
}

/// A frame's place in device memory. Not `Clone`: it is handed along
/// (engine, wire, engine) and freed once, with [`DevMem::free`].
#[derive(Debug)]
pub(crate) struct Slot {
    first: u32,
    chunks: u32,
    len: u32,
    owner: Owner,
    /// The checksum the sending host left to the NIC, not yet computed.
    pending_checksum: Option<ChecksumRequest>,
}

impl Slot {
    /// Frame bytes held.
    pub(crate) fn len(&self) -> u32 {
        self.len
    }

    /// The pool it is charged to.
    pub(crate) fn owner(&self) -> Owner {
        self.owner
    }

    /// The checksum still to be computed over the frame, if any.
    pub(crate) fn pending_checksum(&self) -> Option<ChecksumRequest> {
        self.pending_checksum
    }

    /// Records that the frame's checksum is still to be computed, as `req`
    /// says (from the start of the frame).
    pub(crate) fn set_pending_checksum(&mut self, req: Option<ChecksumRequest>) {
        self.pending_checksum = req;
    }

    /// The slot as the peer-DMA capability carries it: first chunk (bits
    /// 0-23), chunks (24-39), length (40-55), NIC (56) and pool (57).
    pub(crate) fn into_raw(self) -> u64 {
        u64::from(self.first)
            | u64::from(self.chunks) << 24
            | u64::from(self.len) << 40
            | (self.owner.nic as u64 & 1) << 56
            | (self.owner.pool as u64) << 57
    }
}

/// Use of one pool, in chunks.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PoolUse {
    pub(crate) quota: u32,
    pub(crate) used: u32,
    pub(crate) high_water: u32,
    pub(crate) failures: u64,
}

struct Arena {
    bytes: KVVec<u8>,
    /// One bit per chunk, set while allocated.
    map: KVec<u64>,
    chunks: u32,
    /// Where the next search starts (next fit).
    next: u32,
    pools: [[PoolUse; 2]; 2],
}

/// A pair's packet memory.
#[pin_data]
pub(crate) struct DevMem {
    /// Chunks in the arena (fixed).
    chunks: u32,
    /// Taken by the DMA engines (process context) and, for in-place header
    /// access, by forwarding paths in softirq context.
    #[pin]
    arena: SpinLockBh<Arena>,
}

impl DevMem {
    /// `per_nic` bytes for each of the two NICs (rounded down to chunks),
    /// `tx_percent` of each for its transmit pool.
    pub(crate) fn new(per_nic: u32, tx_percent: u32) -> Result<impl PinInit<Self, Error>> {
        let per_nic_chunks = per_nic / CHUNK;
        if per_nic_chunks < 2 || tx_percent == 0 || tx_percent >= 100 {
            return Err(EINVAL);
        }
        let chunks = per_nic_chunks * 2;
        let mut bytes = KVVec::with_capacity((chunks * CHUNK) as usize, GFP_KERNEL)?;
        bytes.resize((chunks * CHUNK) as usize, 0, GFP_KERNEL)?;
        let mut map = KVec::with_capacity(chunks.div_ceil(64) as usize, GFP_KERNEL)?;
        map.resize(chunks.div_ceil(64) as usize, 0, GFP_KERNEL)?;
        let tx = (per_nic_chunks * tx_percent / 100).max(1);
        let quota = [
            PoolUse { quota: per_nic_chunks - tx, ..Default::default() },
            PoolUse { quota: tx, ..Default::default() },
        ];
        Ok(try_pin_init!(DevMem {
            arena <- new_spinlock_bh!(Arena { bytes, map, chunks, next: 0, pools: [quota, quota] }),
            chunks,
        }))
    }

    /// A slot for a `len`-byte frame charged to `owner`, or `None` (counted)
    /// if the pool's quota or the arena is exhausted.
    pub(crate) fn alloc(&self, owner: Owner, len: u32) -> Option<Slot> {
        let chunks = len.div_ceil(CHUNK).max(1);
        let mut a = self.arena.lock();
        let pool = &a.pools[owner.nic][owner.pool as usize];
        if pool.used + chunks > pool.quota {
            a.pools[owner.nic][owner.pool as usize].failures += 1;
            return None;
        }
        let Some(first) = a.find_free(chunks) else {
            a.pools[owner.nic][owner.pool as usize].failures += 1;
            return None;
        };
        a.mark(first, chunks, true);
        a.next = (first + chunks) % a.chunks;
        a.charge(owner, chunks as i64);
        Some(Slot { first, chunks, len, owner, pending_checksum: None })
    }

    /// Whether a `len`-byte frame fits in `owner`'s pool at all (when empty).
    pub(crate) fn can_ever_hold(&self, owner: Owner, len: u32) -> bool {
        len.div_ceil(CHUNK).max(1) <= self.arena.lock().pools[owner.nic][owner.pool as usize].quota
    }

    /// Moves `slot`'s charge to `to` (the wire handing a frame to the far
    /// NIC); gives the slot back if `to` has no room.
    pub(crate) fn move_to(&self, mut slot: Slot, to: Owner) -> Result<Slot, Slot> {
        let mut a = self.arena.lock();
        let pool = &mut a.pools[to.nic][to.pool as usize];
        if pool.used + slot.chunks > pool.quota {
            pool.failures += 1;
            return Err(slot);
        }
        a.charge(slot.owner, -(slot.chunks as i64));
        a.charge(to, slot.chunks as i64);
        slot.owner = to;
        Ok(slot)
    }

    /// Frees `slot`.
    pub(crate) fn free(&self, slot: Slot) {
        let mut a = self.arena.lock();
        a.mark(slot.first, slot.chunks, false);
        a.charge(slot.owner, -(slot.chunks as i64));
    }

    /// Runs `f` on the slot's frame bytes.
    pub(crate) fn with_bytes<R>(&self, slot: &Slot, f: impl FnOnce(&mut [u8]) -> R) -> R {
        let mut a = self.arena.lock();
        let start = (slot.first * CHUNK) as usize;
        f(&mut a.bytes[start..start + slot.len as usize])
    }

    /// The slot `raw` names ([`Slot::into_raw`]), if it lies inside the
    /// arena and its length fits its chunks: what the capability hands back
    /// is checked, not trusted.
    pub(crate) fn slot_from_raw(&self, raw: u64) -> Option<Slot> {
        let first = (raw & 0xff_ffff) as u32;
        let chunks = ((raw >> 24) & 0xffff) as u32;
        let len = ((raw >> 40) & 0xffff) as u32;
        let nic = ((raw >> 56) & 1) as usize;
        let pool = if raw >> 57 & 1 == 0 { Pool::Rx } else { Pool::Tx };
        let fits = chunks > 0 && first.checked_add(chunks)? <= self.chunks && len <= chunks * CHUNK;
        fits.then_some(Slot { first, chunks, len, owner: Owner { nic, pool }, pending_checksum: None })
    }

    /// Runs `f` on `n` bytes at `off` of the slot's frame; `ERANGE` if they
    /// are not inside it.
    pub(crate) fn with_range<R>(&self, slot: &Slot, off: u32, n: usize, f: impl FnOnce(&mut [u8]) -> R) -> Result<R> {
        let end = (off as usize).checked_add(n).ok_or(ERANGE)?;
        if end > slot.len as usize {
            return Err(ERANGE);
        }
        let mut a = self.arena.lock();
        let start = (slot.first * CHUNK) as usize;
        let bytes = a.bytes.get_mut(start + off as usize..start + end).ok_or(ERANGE)?;
        Ok(f(bytes))
    }

    /// A copy of one pool's use.
    pub(crate) fn pool(&self, owner: Owner) -> PoolUse {
        self.arena.lock().pools[owner.nic][owner.pool as usize]
    }
}

impl Arena {
    /// The first chunk of `n` free contiguous chunks, searching from `next`.
    fn find_free(&self, n: u32) -> Option<u32> {
        let mut start = self.next;
        let mut tried = 0;
        while tried < self.chunks {
            if start + n > self.chunks {
                // A run cannot wrap: go on from the start.
                tried += self.chunks - start;
                start = 0;
                continue;
            }
            match (start..start + n).find(|&c| self.is_used(c)) {
                None => return Some(start),
                Some(used) => {
                    tried += used + 1 - start;
                    start = (used + 1) % self.chunks;
                }
            }
        }
        None
    }

    fn is_used(&self, c: u32) -> bool {
        self.map[(c / 64) as usize] & (1u64 << (c % 64)) != 0
    }

    fn mark(&mut self, first: u32, n: u32, used: bool) {
        for c in first..first + n {
            let (w, bit) = ((c / 64) as usize, 1u64 << (c % 64));
            if used { self.map[w] |= bit } else { self.map[w] &= !bit }
        }
    }

    fn charge(&mut self, owner: Owner, chunks: i64) {
        let p = &mut self.pools[owner.nic][owner.pool as usize];
        p.used = (i64::from(p.used) + chunks).clamp(0, i64::from(u32::MAX)) as u32;
        p.high_water = p.high_water.max(p.used);
    }
}

#[kunit_tests(pnic_mem)]
mod tests {
    use super::*;

    const RX0: Owner = Owner { nic: 0, pool: Pool::Rx };
    const TX0: Owner = Owner { nic: 0, pool: Pool::Tx };
    const RX1: Owner = Owner { nic: 1, pool: Pool::Rx };

    fn mem(per_nic: u32) -> Result<Pin<KBox<DevMem>>> {
        KBox::pin_init(DevMem::new(per_nic, 50)?, GFP_KERNEL)
    }

    #[test]
    fn a_pool_holds_exactly_its_quota_then_counts_a_failure() -> Result {
        // 64 KiB per NIC, half for receive: 128 chunks, 3 of a 9000-byte
        // frame each (36 chunks), 128 frames of 64 bytes.
        let m = mem(64 * 1024)?;
        let mut held = KVec::new();
        while let Some(s) = m.alloc(RX0, 9000) {
            held.push(s, GFP_KERNEL)?;
        }
        assert_eq!(held.len(), 3);
        assert_eq!(m.pool(RX0).failures, 1);
        // The other pools are untouched by the exhaustion.
        assert!(m.pool(TX0).used == 0 && m.pool(TX0).failures == 0);
        let small = m.alloc(TX0, 64).ok_or(ENOMEM)?;
        for s in held.drain_all() {
            m.free(s);
        }
        m.free(small);
        let mut n = 0;
        let mut held = KVec::new();
        while let Some(s) = m.alloc(RX0, 64) {
            held.push(s, GFP_KERNEL)?;
            n += 1;
        }
        assert_eq!(n, 128);
        for s in held.drain_all() {
            m.free(s);
        }
        assert_eq!(m.pool(RX0).used, 0);
        assert_eq!(m.pool(RX0).high_water, 128);
        Ok(())
    }

    #[test]
    fn freed_memory_is_reused_and_holes_are_found() -> Result {
        let m = mem(16 * 1024)?; // 64 chunks per NIC, 32 per pool
        let a = m.alloc(RX0, 1000).ok_or(ENOMEM)?; // 4 chunks
        let b = m.alloc(RX0, 1000).ok_or(ENOMEM)?;
        let c = m.alloc(TX0, 6000).ok_or(ENOMEM)?; // 24 chunks
        m.free(b);
        // 4 + 24 used of the arena's 128; a run of 20 still fits somewhere.
        let d = m.alloc(RX0, 20 * CHUNK).ok_or(ENOMEM)?;
        m.with_bytes(&d, |bytes| bytes.fill(0xa5));
        assert!(m.with_bytes(&d, |bytes| bytes.iter().all(|&x| x == 0xa5)));
        // The first frame's bytes are its own.
        m.with_bytes(&a, |bytes| bytes.fill(1));
        assert!(m.with_bytes(&d, |bytes| bytes.iter().all(|&x| x == 0xa5)));
        for s in [a, c, d] {
            m.free(s);
        }
        for o in [RX0, TX0] {
            assert_eq!(m.pool(o).used, 0);
        }
        Ok(())
    }

    #[test]
    fn the_wire_moves_a_charge_and_refuses_a_full_receiver() -> Result {
        let m = mem(16 * 1024)?; // 32 chunks per pool
        let s = m.alloc(TX0, 1500).ok_or(ENOMEM)?; // 6 chunks
        let s = m.move_to(s, RX1).map_err(|_| ENOSPC)?;
        assert_eq!((m.pool(TX0).used, m.pool(RX1).used), (0, 6));
        assert_eq!(s.owner(), RX1);
        // Fill NIC 1's receive pool, then a move is refused and counted.
        let mut held = KVec::new();
        while let Some(x) = m.alloc(RX1, 1500) {
            held.push(x, GFP_KERNEL)?;
        }
        let t = m.alloc(TX0, 1500).ok_or(ENOMEM)?;
        let before = m.pool(RX1).failures;
        let t = match m.move_to(t, RX1) {
            Ok(_) => return Err(EINVAL),
            Err(t) => t,
        };
        assert_eq!(m.pool(RX1).failures, before + 1);
        assert_eq!(m.pool(TX0).used, 6);
        m.free(t);
        m.free(s);
        for x in held.drain_all() {
            m.free(x);
        }
        assert_eq!((m.pool(TX0).used, m.pool(RX1).used), (0, 0));
        Ok(())
    }

    #[test]
    fn bad_sizes_are_refused() {
        assert!(DevMem::new(CHUNK, 50).is_err());
        assert!(DevMem::new(64 * 1024, 0).is_err());
        assert!(DevMem::new(64 * 1024, 100).is_err());
    }
}
