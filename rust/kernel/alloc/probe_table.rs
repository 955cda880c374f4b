// SPDX-License-Identifier: GPL-2.0

//! A hash table of fixed capacity, allocated once: open addressing with
//! linear probing and backward-shift deletion.
//!
//! For lookups on a fast path that must not allocate (softirq, under a
//! spinlock): a demultiplexer's flow table, say. Insertion refuses rather
//! than grow once the table is half full, so probes stay short; deletion
//! moves later entries of a run back instead of leaving tombstones, so a
//! table whose entries come and go never degrades into scanning every slot.

use crate::{alloc::KVVec, prelude::*};

/// A key of a [`ProbeTable`]: compared for equality, and hashed.
pub trait ProbeKey: Eq + Copy {
    /// A hash of the key; the table reduces it to a slot.
    fn hash(&self) -> u32;
}

/// A map of at most half its slots' worth of entries.
///
/// # Invariants
///
/// `slots.len()` is the slot count, at least 2. Every entry is reachable
/// from its home slot (`hash % slots`) by probing forward without crossing
/// an empty slot; no key occurs twice; `len` is the number of entries and at
/// most half the slots.
pub struct ProbeTable<K: ProbeKey, V> {
    slots: KVVec<Option<(K, V)>>,
    len: usize,
}

impl<K: ProbeKey, V> ProbeTable<K, V> {
    /// An empty table for at most `capacity` entries (it has twice as many
    /// slots); `EINVAL` for 0. Allocates (`GFP_KERNEL`): process context.
    pub fn new(capacity: usize) -> Result<Self> {
        let n = capacity.checked_mul(2).ok_or(EINVAL)?;
        if n == 0 {
            return Err(EINVAL);
        }
        let mut slots = KVVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            slots.push(None, GFP_KERNEL)?;
        }
        Ok(ProbeTable { slots, len: 0 })
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Most entries the table takes.
    pub fn capacity(&self) -> usize {
        self.slots.len() / 2
    }

    fn home(&self, key: &K) -> usize {
        key.hash() as usize % self.slots.len()
    }

    /// The slot holding `key`, if any.
    fn find(&self, key: &K) -> Option<usize> {
        let n = self.slots.len();
        let start = self.home(key);
        for i in 0..n {
            let s = (start + i) % n;
            match self.slots.get(s)? {
                None => return None,
                Some((k, _)) if k == key => return Some(s),
                Some(_) => (),
            }
        }
        None
    }

    /// The value under `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        let s = self.find(key)?;
        self.slots.get(s)?.as_ref().map(|(_, v)| v)
    }

    /// Whether `key` is present.
    pub fn contains(&self, key: &K) -> bool {
        self.find(key).is_some()
    }

    /// Adds `value` under `key`. Gives the value back with `EEXIST` if the
    /// key is present, with `ENOSPC` if the table holds its capacity.
    pub fn insert(&mut self, key: K, value: V) -> Result<(), (Error, V)> {
        if self.contains(&key) {
            return Err((EEXIST, value));
        }
        if self.len >= self.capacity() {
            return Err((ENOSPC, value));
        }
        let n = self.slots.len();
        let start = self.home(&key);
        // At most half the slots are used, so an empty one exists.
        let Some(s) = (0..n).map(|i| (start + i) % n).find(|s| matches!(self.slots.get(*s), Some(None))) else {
            return Err((ENOSPC, value));
        };
        if let Some(slot) = self.slots.get_mut(s) {
            *slot = Some((key, value));
            self.len += 1;
        }
        Ok(())
    }

    /// Takes the entry under `key` out, moving later entries of its probe
    /// run back so that every entry stays reachable without tombstones.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let mut hole = self.find(key)?;
        let n = self.slots.len();
        let taken = self.slots.get_mut(hole)?.take().map(|(_, v)| v);
        self.len -= 1;
        let mut next = hole;
        loop {
            next = (next + 1) % n;
            let home = match self.slots.get(next) {
                Some(Some((k, _))) => self.home(k),
                _ => break,
            };
            // The entry at `next` may move into the hole unless its home lies
            // cyclically in (hole, next]: then it would sit before its home.
            if (next + n - home) % n >= (next + n - hole) % n {
                self.slots.swap(hole, next);
                hole = next;
            }
        }
        taken
    }

    /// Takes every entry out, calling `f` on each value.
    pub fn drain(&mut self, mut f: impl FnMut(V)) {
        for slot in self.slots.iter_mut() {
            if let Some((_, v)) = slot.take() {
                f(v);
            }
        }
        self.len = 0;
    }
}
