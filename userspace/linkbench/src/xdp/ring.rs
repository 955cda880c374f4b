//! Memory shared with the kernel by an AF_XDP socket: mappings, and the
//! producer and consumer rings laid out in them.

use super::*;

/// A memory mapping, unmapped when dropped.
pub(super) struct Mmap {
    /// Start of the mapping.
    ptr: NonNull<u8>,
    /// Length of the mapping in bytes.
    pub(super) len: usize,
}

// SAFETY: a `Mmap` owns its mapping exclusively, as a `Box<[u8]>` owns its
// allocation; nothing about it is tied to the thread that created it.
unsafe impl Send for Mmap {}

impl Mmap {
    /// Maps `len` bytes of fresh, zeroed, private memory.
    pub(super) fn anonymous(len: usize) -> io::Result<Self> {
        Self::new(
            len,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
            0,
        )
    }

    /// Maps `len` bytes of `fd` at `offset`, shared with the kernel.
    pub(super) fn shared(fd: &OwnedFd, len: usize, offset: libc::off_t) -> io::Result<Self> {
        Self::new(
            len,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            fd.as_raw_fd(),
            offset,
        )
    }

    /// Calls `mmap(2)` for a readable and writable mapping.
    pub(super) fn new(len: usize, flags: c_int, fd: c_int, offset: libc::off_t) -> io::Result<Self> {
        // SAFETY: without MAP_FIXED the kernel places the mapping in unused
        // address space, so it cannot alias any existing object.
        let addr = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                offset,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(addr.cast::<u8>())
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidData))?;
        Ok(Self { ptr, len })
    }

    /// Start of the mapping.
    pub(super) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: `ptr` and `len` describe a mapping this value created and
        // still owns; every borrow of its contents is tied to a borrow of
        // `self`, so none outlives it.
        unsafe { libc::munmap(self.ptr.as_ptr().cast::<c_void>(), self.len) };
    }
}

/// Types the kernel stores in rings: plain integer data, valid for every bit
/// pattern.
///
/// # Safety
///
/// Implementors must be `#[repr(C)]` or primitive, contain only integers and
/// match the kernel's ring entry layout.
pub(super) unsafe trait RingEntry: Copy {}

// SAFETY: a `u64` is valid for every bit pattern; fill and completion ring
// entries are `__u64` addresses.
unsafe impl RingEntry for u64 {}

// SAFETY: `xdp_desc` is `#[repr(C)]` `struct xdp_desc` made of integers only.
unsafe impl RingEntry for libc::xdp_desc {}

/// A ring shared with the kernel: a producer index, a consumer index, a
/// flags word and a power-of-two number of `T` entries, all in one mapping
/// of the socket.
pub(super) struct Ring<T> {
    /// The mapping holding the ring.
    map: Mmap,
    /// Byte offset of the producer index in `map`.
    producer: usize,
    /// Byte offset of the consumer index in `map`.
    consumer: usize,
    /// Byte offset of the flags word in `map`.
    flags: usize,
    /// Byte offset of the first entry in `map`.
    descs: usize,
    /// Number of entries minus one.
    mask: u32,
    /// The ring holds `T`s.
    entries: PhantomData<T>,
}

impl<T: RingEntry> Ring<T> {
    /// Maps the ring of `entries` (a power of two) entries that `sock`
    /// exposes at page offset `pgoff`, with the layout `off` the kernel
    /// reported.
    pub(super) fn open(sock: &OwnedFd, off: &libc::xdp_ring_offset, entries: u32, pgoff: u64) -> Result<Self> {
        let offset = |v: u64| usize::try_from(v).context("AF_XDP ring offset out of range");
        let (producer, consumer, flags, descs) = (
            offset(off.producer)?,
            offset(off.consumer)?,
            offset(off.flags)?,
            offset(off.desc)?,
        );
        let len = (entries as usize)
            .checked_mul(size_of::<T>())
            .and_then(|n| n.checked_add(descs))
            .context("AF_XDP ring size overflows")?;
        for index in [producer, consumer, flags] {
            ensure!(
                index % align_of::<AtomicU32>() == 0 && index + size_of::<u32>() <= len,
                "AF_XDP ring index at unusable offset {index}"
            );
        }
        ensure!(
            descs % align_of::<T>() == 0,
            "AF_XDP ring entries misaligned"
        );
        let pgoff = libc::off_t::try_from(pgoff).context("AF_XDP ring page offset out of range")?;
        let map = Mmap::shared(sock, len, pgoff).context("mmap AF_XDP ring")?;
        Ok(Self {
            map,
            producer,
            consumer,
            flags,
            descs,
            mask: entries - 1,
            entries: PhantomData,
        })
    }

    /// The index word at byte `offset`: the producer, consumer or flags.
    pub(super) fn word(&self, offset: usize) -> &AtomicU32 {
        // SAFETY: `offset` is one of the offsets `open` checked to be
        // 4-aligned and inside the page-aligned mapping, which lives as long
        // as `self`. The kernel accesses the word only with 32-bit
        // READ_ONCE/WRITE_ONCE/acquire/release operations, which are atomic,
        // and we never access it non-atomically.
        unsafe { AtomicU32::from_ptr(self.map.as_ptr().add(offset).cast::<u32>()) }
    }

    /// The slot of free-running ring index `index`.
    pub(super) fn slot(&self, index: u32) -> *mut T {
        let slot = (index & self.mask) as usize;
        // SAFETY: `slot` is below the number of entries, and `open` checked
        // that `descs` plus that many entries fits in the mapping.
        unsafe { self.map.as_ptr().add(self.descs).cast::<T>().add(slot) }
    }

    /// Whether the kernel asks to be woken up to process this ring.
    pub(super) fn needs_wakeup(&self) -> bool {
        self.word(self.flags).load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }
}

/// A ring we produce into and the kernel consumes (fill, TX).
pub(super) struct ProdRing<T> {
    /// The shared ring.
    pub(super) ring: Ring<T>,
    /// Our producer index, possibly ahead of the published one.
    prod: u32,
    /// The kernel's consumer index as last read.
    cons: u32,
}

impl<T: RingEntry> ProdRing<T> {
    /// Starts producing into `ring`.
    pub(super) fn new(ring: Ring<T>) -> Self {
        let prod = ring.word(ring.producer).load(Ordering::Relaxed);
        let cons = ring.word(ring.consumer).load(Ordering::Acquire);
        Self { ring, prod, cons }
    }

    /// Number of free slots, re-reading the kernel's consumer index when
    /// fewer than `want` seem free.
    pub(super) fn free(&mut self, want: u32) -> u32 {
        let size = self.ring.mask + 1;
        let mut free = size.saturating_sub(self.prod.wrapping_sub(self.cons));
        if free < want {
            self.cons = self.ring.word(self.ring.consumer).load(Ordering::Acquire);
            free = size.saturating_sub(self.prod.wrapping_sub(self.cons));
        }
        free
    }

    /// Writes `entry` into the next slot without publishing it; returns
    /// false when the ring is full.
    pub(super) fn push(&mut self, entry: T) -> bool {
        if self.free(1) == 0 {
            return false;
        }
        // SAFETY: the slot is inside the mapping and aligned for `T`
        // (`Ring::slot`). It is ours: the kernel's consumer index, read with
        // Acquire, has moved past its previous use, and the kernel will not
        // read it before we publish a producer index beyond it.
        unsafe { self.ring.slot(self.prod).write(entry) };
        self.prod = self.prod.wrapping_add(1);
        true
    }

    /// Publishes the entries pushed so far.
    pub(super) fn submit(&self) {
        self.ring
            .word(self.ring.producer)
            .store(self.prod, Ordering::Release);
    }

    /// Number of pushed entries the kernel has not consumed yet.
    pub(super) fn unconsumed(&mut self) -> u32 {
        self.cons = self.ring.word(self.ring.consumer).load(Ordering::Acquire);
        self.prod.wrapping_sub(self.cons)
    }
}

/// A ring the kernel produces into and we consume (RX, completion).
pub(super) struct ConsRing<T> {
    /// The shared ring.
    ring: Ring<T>,
    /// Our consumer index.
    cons: u32,
    /// The kernel's producer index as last read.
    prod: u32,
}

impl<T: RingEntry> ConsRing<T> {
    /// Starts consuming from `ring`.
    pub(super) fn new(ring: Ring<T>) -> Self {
        let cons = ring.word(ring.consumer).load(Ordering::Relaxed);
        let prod = ring.word(ring.producer).load(Ordering::Acquire);
        Self { ring, cons, prod }
    }

    /// Number of entries ready for us, re-reading the kernel's producer
    /// index when none seem left.
    pub(super) fn available(&mut self) -> u32 {
        if self.prod == self.cons {
            self.prod = self.ring.word(self.ring.producer).load(Ordering::Acquire);
        }
        self.prod.wrapping_sub(self.cons).min(self.ring.mask + 1)
    }

    /// Reads the `i`-th ready entry (`i < available()`).
    pub(super) fn get(&self, i: u32) -> T {
        // SAFETY: the slot is inside the mapping and aligned for `T`
        // (`Ring::slot`), and `T` is valid for any bits (`RingEntry`). For
        // `i < available()` the kernel finished writing it before publishing
        // the producer index we read with Acquire, and it will not reuse it
        // before we release it.
        unsafe { self.ring.slot(self.cons.wrapping_add(i)).read() }
    }

    /// Hands `n` consumed entries back to the kernel.
    pub(super) fn release(&mut self, n: u32) {
        if n > 0 {
            self.cons = self.cons.wrapping_add(n);
            self.ring
                .word(self.ring.consumer)
                .store(self.cons, Ordering::Release);
        }
    }
}

