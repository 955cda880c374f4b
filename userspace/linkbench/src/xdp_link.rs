//! AF_XDP transport in copy mode (`XDP_COPY`).
//!
//! One AF_XDP socket is bound to queue 0 of an interface. A tiny
//! hand-assembled XDP program redirects the frames of one ethertype into it
//! through a one-entry XSKMAP and passes every other frame to the stack.
//! Frames travel through a UMEM of page-sized chunks: the first half is lent
//! to the kernel for receiving (fill and RX rings), the second half carries
//! outgoing frames (TX and completion rings).
//!
//! # Frame size limit
//!
//! Without multi-buffer AF_XDP a frame must fit in one UMEM chunk, and a
//! chunk can be at most one page:
//!
//! - `xdp_umem_reg()` (net/xdp/xdp_umem.c) rejects any `chunk_size` above
//!   `PAGE_SIZE`, in aligned and unaligned (`XDP_UMEM_UNALIGNED_CHUNK_FLAG`)
//!   mode alike; unaligned mode only drops the power-of-two requirement, and
//!   a TX descriptor is still limited to one chunk (`xp_*_validate_desc()`).
//! - On receive, the kernel keeps `XDP_PACKET_HEADROOM` (256) bytes free in
//!   front of the frame, and `xsk_rcv_check()` (net/xdp/xsk.c) drops
//!   (counting `rx_dropped`) every frame longer than
//!   `chunk_size - XDP_PACKET_HEADROOM - headroom` unless the socket was
//!   bound with `XDP_USE_SG`.
//!
//! So with 4 KiB pages the largest frame, Ethernet header included, is
//! 4096 - 256 = 3840 bytes, and 9000-byte jumbo frames cannot be received in
//! copy mode. Carrying them would take multi-buffer AF_XDP: binding with
//! `XDP_USE_SG`, loading the program with `BPF_F_XDP_HAS_FRAGS`, and
//! reassembling chains of descriptors marked `XDP_PKT_CONTD` (and splitting
//! frames over several TX descriptors), which this transport does not do.
//! The interface may impose a lower limit still through its MTU.

use crate::link::Link;
use anyhow::{anyhow, bail, ensure, Context, Result};
use std::ffi::{c_int, c_long, c_uint, c_void, CString};
use std::io;
use std::marker::PhantomData;
use std::mem::offset_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Bytes the kernel keeps free in front of every received frame in its
/// chunk (`XDP_PACKET_HEADROOM` in include/uapi/linux/bpf.h).
const XDP_PACKET_HEADROOM: usize = 256;

/// Queue of the interface the socket is bound to.
const QUEUE_ID: u32 = 0;

/// How long sending waits for the kernel to take queued frames or to hand
/// back transmitted chunks before reporting a stalled link.
const TX_STALL: Duration = Duration::from_secs(1);

/// How long [`bind`] retries while the queue is still held by a socket
/// the kernel is releasing.
const BIND_RETRY: Duration = Duration::from_secs(2);

/// Size of the buffer the verifier writes its log into.
const VERIFIER_LOG_SIZE: usize = 64 * 1024;

/// `bpf(2)` command `BPF_MAP_CREATE`.
const BPF_MAP_CREATE: c_int = 0;
/// `bpf(2)` command `BPF_MAP_UPDATE_ELEM`.
const BPF_MAP_UPDATE_ELEM: c_int = 2;
/// `bpf(2)` command `BPF_PROG_LOAD`.
const BPF_PROG_LOAD: c_int = 5;
/// `bpf(2)` command `BPF_LINK_CREATE`.
const BPF_LINK_CREATE: c_int = 28;
/// `enum bpf_map_type` value `BPF_MAP_TYPE_XSKMAP`.
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
/// `enum bpf_prog_type` value `BPF_PROG_TYPE_XDP`.
const BPF_PROG_TYPE_XDP: u32 = 6;
/// `enum bpf_attach_type` value `BPF_XDP`.
const BPF_XDP: u32 = 37;
/// `XDP_FLAGS_SKB_MODE` (include/uapi/linux/if_link.h): generic XDP.
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
/// `src_reg` of a 64-bit immediate load whose immediate is a map fd.
const BPF_PSEUDO_MAP_FD: u8 = 1;
/// Helper number of `bpf_redirect_map()`.
const BPF_FUNC_REDIRECT_MAP: i32 = 51;
/// XDP verdict `XDP_PASS`: hand the frame to the network stack.
const XDP_PASS: i32 = 2;

/// eBPF opcodes the program uses (include/uapi/linux/bpf_common.h, bpf.h).
mod op {
    /// `BPF_LDX | BPF_MEM | BPF_W`: `dst = *(u32 *)(src + off)`.
    pub const LDX_W: u8 = 0x61;
    /// `BPF_LDX | BPF_MEM | BPF_H`: `dst = *(u16 *)(src + off)`.
    pub const LDX_H: u8 = 0x69;
    /// `BPF_ALU64 | BPF_MOV | BPF_X`: `dst = src`.
    pub const MOV64_X: u8 = 0xbf;
    /// `BPF_ALU64 | BPF_MOV | BPF_K`: `dst = imm`.
    pub const MOV64_K: u8 = 0xb7;
    /// `BPF_ALU64 | BPF_ADD | BPF_K`: `dst += imm`.
    pub const ADD64_K: u8 = 0x07;
    /// `BPF_JMP | BPF_JGT | BPF_X`: `if dst > src goto +off`.
    pub const JGT_X: u8 = 0x2d;
    /// `BPF_JMP | BPF_JNE | BPF_K`: `if dst != imm goto +off`.
    pub const JNE_K: u8 = 0x55;
    /// `BPF_LD | BPF_DW | BPF_IMM`: 64-bit immediate load over two slots.
    pub const LD_DW_IMM: u8 = 0x18;
    /// `BPF_JMP | BPF_CALL`: call helper `imm`.
    pub const CALL: u8 = 0x85;
    /// `BPF_JMP | BPF_EXIT`: return `r0`.
    pub const EXIT: u8 = 0x95;
}

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Clone, Copy)]
struct BpfInsn {
    /// Opcode.
    code: u8,
    /// The `dst_reg:4, src_reg:4` bit-fields.
    regs: u8,
    /// Signed offset: memory displacement or jump distance.
    off: i16,
    /// Signed immediate.
    imm: i32,
}

impl BpfInsn {
    /// Builds an instruction from its opcode, registers (0..=10), offset and
    /// immediate.
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        // C allocates the first bit-field (`dst_reg`) in the low nibble on
        // little-endian targets and in the high nibble on big-endian ones.
        let regs = if cfg!(target_endian = "little") {
            (src << 4) | dst
        } else {
            (dst << 4) | src
        };
        Self {
            code,
            regs,
            off,
            imm,
        }
    }
}

/// The leading `union bpf_attr` fields of `BPF_MAP_CREATE`.
#[repr(C)]
struct MapCreateAttr {
    /// `enum bpf_map_type`.
    map_type: u32,
    /// Key size in bytes.
    key_size: u32,
    /// Value size in bytes.
    value_size: u32,
    /// Number of entries.
    max_entries: u32,
}

/// The `union bpf_attr` fields of `BPF_MAP_*_ELEM`.
#[repr(C)]
struct MapElemAttr {
    /// Map to act on.
    map_fd: u32,
    /// Padding before the 8-byte aligned `key`.
    pad: u32,
    /// Address of the key.
    key: u64,
    /// Address of the value.
    value: u64,
    /// `BPF_ANY`, `BPF_NOEXIST` or `BPF_EXIST`.
    flags: u64,
}

/// The leading `union bpf_attr` fields of `BPF_PROG_LOAD`.
#[repr(C)]
struct ProgLoadAttr {
    /// `enum bpf_prog_type`.
    prog_type: u32,
    /// Number of instructions.
    insn_cnt: u32,
    /// Address of the instructions.
    insns: u64,
    /// Address of the NUL-terminated license string.
    license: u64,
    /// Verifier log verbosity.
    log_level: u32,
    /// Size of the log buffer.
    log_size: u32,
    /// Address of the log buffer.
    log_buf: u64,
    /// Unused for XDP.
    kern_version: u32,
    /// `BPF_F_*` load flags.
    prog_flags: u32,
    /// NUL-padded program name.
    prog_name: [u8; 16],
}

/// The leading `union bpf_attr` fields of `BPF_LINK_CREATE`.
#[repr(C)]
struct LinkCreateAttr {
    /// Program to attach.
    prog_fd: u32,
    /// Interface to attach it to.
    target_ifindex: u32,
    /// `enum bpf_attach_type`.
    attach_type: u32,
    /// `XDP_FLAGS_*` for XDP links.
    flags: u32,
}

// The offsets of the fields in `union bpf_attr` (include/uapi/linux/bpf.h).
const _: () = {
    assert!(size_of::<BpfInsn>() == 8);
    assert!(size_of::<MapCreateAttr>() == 16);
    assert!(offset_of!(MapElemAttr, key) == 8);
    assert!(offset_of!(MapElemAttr, value) == 16);
    assert!(offset_of!(MapElemAttr, flags) == 24);
    assert!(size_of::<MapElemAttr>() == 32);
    assert!(offset_of!(ProgLoadAttr, insns) == 8);
    assert!(offset_of!(ProgLoadAttr, license) == 16);
    assert!(offset_of!(ProgLoadAttr, log_level) == 24);
    assert!(offset_of!(ProgLoadAttr, log_buf) == 32);
    assert!(offset_of!(ProgLoadAttr, kern_version) == 40);
    assert!(offset_of!(ProgLoadAttr, prog_name) == 48);
    assert!(size_of::<ProgLoadAttr>() == 64);
    assert!(offset_of!(LinkCreateAttr, attach_type) == 8);
    assert!(size_of::<LinkCreateAttr>() == 16);
};

/// Runs `bpf(2)` command `cmd` with `attr` as its `union bpf_attr`,
/// returning the command's non-negative result.
///
/// # Safety
///
/// `A` must be `#[repr(C)]` without implicit padding and laid out as the
/// leading `union bpf_attr` fields of `cmd`, and every address stored in
/// `attr` must be valid for what the kernel does with it during the call.
unsafe fn bpf<A>(cmd: c_int, attr: &mut A) -> io::Result<c_long> {
    let size = size_of::<A>() as c_uint;
    // SAFETY: `attr` is valid for reads and writes of `size` bytes, the
    // kernel touches no more than that, and the caller vouches for the
    // layout and for the addresses inside it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            ptr::from_mut(attr).cast::<c_void>(),
            size,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Runs a `bpf(2)` command that creates an object and returns a new file
/// descriptor for it.
///
/// # Safety
///
/// As for [`bpf`]; `cmd` must be a command returning a new descriptor.
unsafe fn bpf_fd<A>(cmd: c_int, attr: &mut A) -> io::Result<OwnedFd> {
    // SAFETY: forwarded from our caller.
    let ret = unsafe { bpf(cmd, attr) }?;
    let fd = c_int::try_from(ret).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    // SAFETY: the command returned a descriptor it just opened for us, which
    // nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Creates the one-entry XSKMAP the program redirects into.
fn create_xskmap() -> Result<OwnedFd> {
    let mut attr = MapCreateAttr {
        map_type: BPF_MAP_TYPE_XSKMAP,
        key_size: 4,
        value_size: 4,
        max_entries: 1,
    };
    // SAFETY: `MapCreateAttr` is the head of the BPF_MAP_CREATE attributes
    // and holds no addresses.
    unsafe { bpf_fd(BPF_MAP_CREATE, &mut attr) }.context("BPF_MAP_CREATE (XSKMAP)")
}

/// Assembles the XDP program: frames of `ethertype` (host order) that came
/// in on a queue with a socket in `map` go to that socket, all others to the
/// stack.
fn xdp_program(ethertype: u16, map: &OwnedFd) -> [BpfInsn; 15] {
    // The 16-bit load reads the big-endian wire bytes in host order.
    let wire = i32::from(u16::from_ne_bytes(ethertype.to_be_bytes()));
    [
        // 0: r2 = ctx->data
        BpfInsn::new(op::LDX_W, 2, 1, 0, 0),
        // 1: r3 = ctx->data_end
        BpfInsn::new(op::LDX_W, 3, 1, 4, 0),
        // 2: r4 = r2
        BpfInsn::new(op::MOV64_X, 4, 2, 0, 0),
        // 3: r4 += 14 (Ethernet header)
        BpfInsn::new(op::ADD64_K, 4, 0, 0, 14),
        // 4: if r4 > r3 goto pass
        BpfInsn::new(op::JGT_X, 4, 3, 8, 0),
        // 5: r4 = ethertype as loaded
        BpfInsn::new(op::LDX_H, 4, 2, 12, 0),
        // 6: if r4 != wanted goto pass
        BpfInsn::new(op::JNE_K, 4, 0, 6, wire),
        // 7: r2 = ctx->rx_queue_index (the map key)
        BpfInsn::new(op::LDX_W, 2, 1, 16, 0),
        // 8-9: r1 = map
        BpfInsn::new(op::LD_DW_IMM, 1, BPF_PSEUDO_MAP_FD, 0, map.as_raw_fd()),
        BpfInsn::new(0, 0, 0, 0, 0),
        // 10: r3 = XDP_PASS, the verdict when the map has no socket at r2
        BpfInsn::new(op::MOV64_K, 3, 0, 0, XDP_PASS),
        // 11: r0 = bpf_redirect_map(r1, r2, r3)
        BpfInsn::new(op::CALL, 0, 0, 0, BPF_FUNC_REDIRECT_MAP),
        // 12: return r0
        BpfInsn::new(op::EXIT, 0, 0, 0, 0),
        // 13: pass: r0 = XDP_PASS
        BpfInsn::new(op::MOV64_K, 0, 0, 0, XDP_PASS),
        // 14: return r0
        BpfInsn::new(op::EXIT, 0, 0, 0, 0),
    ]
}

/// Loads the XDP program of [`xdp_program`]; on failure the error carries
/// the verifier's log.
fn load_program(ethertype: u16, map: &OwnedFd) -> Result<OwnedFd> {
    let insns = xdp_program(ethertype, map);
    let license = c"GPL";
    let mut log = vec![0u8; VERIFIER_LOG_SIZE];
    let mut prog_name = [0u8; 16];
    let name = b"linkbench_xsk";
    prog_name[..name.len()].copy_from_slice(name);
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_XDP,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        kern_version: 0,
        prog_flags: 0,
        prog_name,
    };
    // SAFETY: `ProgLoadAttr` is the head of the BPF_PROG_LOAD attributes;
    // `insns` holds `insn_cnt` instructions, `license` is NUL-terminated and
    // `log` is writable for `log_size` bytes, all alive during the call.
    match unsafe { bpf_fd(BPF_PROG_LOAD, &mut attr) } {
        Ok(prog) => Ok(prog),
        Err(err) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            Err(anyhow!(
                "BPF_PROG_LOAD (XDP): {err}; verifier log:\n{}",
                text.trim_end()
            ))
        }
    }
}

/// Makes entry 0 of `map` point to the AF_XDP socket `sock`.
fn register_socket(map: &OwnedFd, sock: &OwnedFd) -> Result<()> {
    let key: u32 = QUEUE_ID;
    let value = sock.as_raw_fd() as u32;
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        pad: 0,
        key: ptr::from_ref(&key) as u64,
        value: ptr::from_ref(&value) as u64,
        flags: 0,
    };
    // SAFETY: `MapElemAttr` is the BPF_MAP_*_ELEM attribute block; `key` and
    // `value` point to live 4-byte values as the map's sizes require.
    unsafe { bpf(BPF_MAP_UPDATE_ELEM, &mut attr) }.context("BPF_MAP_UPDATE_ELEM (XSKMAP)")?;
    Ok(())
}

/// Attaches `prog` to interface `ifindex` with a BPF link, letting the kernel
/// pick native or generic XDP, and falling back to generic XDP when native
/// mode is refused.
///
/// Besides `EOPNOTSUPP` and `EINVAL`, `ERANGE` also triggers the fallback:
/// veth refuses native XDP for a program without multi-buffer support when
/// the peer's MTU exceeds what fits in a page.
fn attach(prog: &OwnedFd, ifindex: u32) -> Result<OwnedFd> {
    let create = |flags: u32| {
        let mut attr = LinkCreateAttr {
            prog_fd: prog.as_raw_fd() as u32,
            target_ifindex: ifindex,
            attach_type: BPF_XDP,
            flags,
        };
        // SAFETY: `LinkCreateAttr` is the head of the BPF_LINK_CREATE
        // attributes and holds no addresses.
        unsafe { bpf_fd(BPF_LINK_CREATE, &mut attr) }
    };
    match create(0) {
        Ok(link) => Ok(link),
        Err(err)
            if matches!(
                err.raw_os_error(),
                Some(libc::EOPNOTSUPP | libc::EINVAL | libc::ERANGE)
            ) =>
        {
            create(XDP_FLAGS_SKB_MODE).with_context(|| {
                format!("BPF_LINK_CREATE (XDP): default mode failed ({err}), so did generic mode")
            })
        }
        Err(err) => Err(err).context("BPF_LINK_CREATE (XDP)"),
    }
}

/// A memory mapping, unmapped when dropped.
struct Mmap {
    /// Start of the mapping.
    ptr: NonNull<u8>,
    /// Length of the mapping in bytes.
    len: usize,
}

// SAFETY: a `Mmap` owns its mapping exclusively, as a `Box<[u8]>` owns its
// allocation; nothing about it is tied to the thread that created it.
unsafe impl Send for Mmap {}

impl Mmap {
    /// Maps `len` bytes of fresh, zeroed, private memory.
    fn anonymous(len: usize) -> io::Result<Self> {
        Self::new(
            len,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
            0,
        )
    }

    /// Maps `len` bytes of `fd` at `offset`, shared with the kernel.
    fn shared(fd: &OwnedFd, len: usize, offset: libc::off_t) -> io::Result<Self> {
        Self::new(
            len,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            fd.as_raw_fd(),
            offset,
        )
    }

    /// Calls `mmap(2)` for a readable and writable mapping.
    fn new(len: usize, flags: c_int, fd: c_int, offset: libc::off_t) -> io::Result<Self> {
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
    fn as_ptr(&self) -> *mut u8 {
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
unsafe trait RingEntry: Copy {}

// SAFETY: a `u64` is valid for every bit pattern; fill and completion ring
// entries are `__u64` addresses.
unsafe impl RingEntry for u64 {}

// SAFETY: `xdp_desc` is `#[repr(C)]` `struct xdp_desc` made of integers only.
unsafe impl RingEntry for libc::xdp_desc {}

/// A ring shared with the kernel: a producer index, a consumer index, a
/// flags word and a power-of-two number of `T` entries, all in one mapping
/// of the socket.
struct Ring<T> {
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
    fn open(sock: &OwnedFd, off: &libc::xdp_ring_offset, entries: u32, pgoff: u64) -> Result<Self> {
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
    fn word(&self, offset: usize) -> &AtomicU32 {
        // SAFETY: `offset` is one of the offsets `open` checked to be
        // 4-aligned and inside the page-aligned mapping, which lives as long
        // as `self`. The kernel accesses the word only with 32-bit
        // READ_ONCE/WRITE_ONCE/acquire/release operations, which are atomic,
        // and we never access it non-atomically.
        unsafe { AtomicU32::from_ptr(self.map.as_ptr().add(offset).cast::<u32>()) }
    }

    /// The slot of free-running ring index `index`.
    fn slot(&self, index: u32) -> *mut T {
        let slot = (index & self.mask) as usize;
        // SAFETY: `slot` is below the number of entries, and `open` checked
        // that `descs` plus that many entries fits in the mapping.
        unsafe { self.map.as_ptr().add(self.descs).cast::<T>().add(slot) }
    }

    /// Whether the kernel asks to be woken up to process this ring.
    fn needs_wakeup(&self) -> bool {
        self.word(self.flags).load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }
}

/// A ring we produce into and the kernel consumes (fill, TX).
struct ProdRing<T> {
    /// The shared ring.
    ring: Ring<T>,
    /// Our producer index, possibly ahead of the published one.
    prod: u32,
    /// The kernel's consumer index as last read.
    cons: u32,
}

impl<T: RingEntry> ProdRing<T> {
    /// Starts producing into `ring`.
    fn new(ring: Ring<T>) -> Self {
        let prod = ring.word(ring.producer).load(Ordering::Relaxed);
        let cons = ring.word(ring.consumer).load(Ordering::Acquire);
        Self { ring, prod, cons }
    }

    /// Number of free slots, re-reading the kernel's consumer index when
    /// fewer than `want` seem free.
    fn free(&mut self, want: u32) -> u32 {
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
    fn push(&mut self, entry: T) -> bool {
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
    fn submit(&self) {
        self.ring
            .word(self.ring.producer)
            .store(self.prod, Ordering::Release);
    }

    /// Number of pushed entries the kernel has not consumed yet.
    fn unconsumed(&mut self) -> u32 {
        self.cons = self.ring.word(self.ring.consumer).load(Ordering::Acquire);
        self.prod.wrapping_sub(self.cons)
    }
}

/// A ring the kernel produces into and we consume (RX, completion).
struct ConsRing<T> {
    /// The shared ring.
    ring: Ring<T>,
    /// Our consumer index.
    cons: u32,
    /// The kernel's producer index as last read.
    prod: u32,
}

impl<T: RingEntry> ConsRing<T> {
    /// Starts consuming from `ring`.
    fn new(ring: Ring<T>) -> Self {
        let cons = ring.word(ring.consumer).load(Ordering::Relaxed);
        let prod = ring.word(ring.producer).load(Ordering::Acquire);
        Self { ring, cons, prod }
    }

    /// Number of entries ready for us, re-reading the kernel's producer
    /// index when none seem left.
    fn available(&mut self) -> u32 {
        if self.prod == self.cons {
            self.prod = self.ring.word(self.ring.producer).load(Ordering::Acquire);
        }
        self.prod.wrapping_sub(self.cons).min(self.ring.mask + 1)
    }

    /// Reads the `i`-th ready entry (`i < available()`).
    fn get(&self, i: u32) -> T {
        // SAFETY: the slot is inside the mapping and aligned for `T`
        // (`Ring::slot`), and `T` is valid for any bits (`RingEntry`). For
        // `i < available()` the kernel finished writing it before publishing
        // the producer index we read with Acquire, and it will not reuse it
        // before we release it.
        unsafe { self.ring.slot(self.cons.wrapping_add(i)).read() }
    }

    /// Hands `n` consumed entries back to the kernel.
    fn release(&mut self, n: u32) {
        if n > 0 {
            self.cons = self.cons.wrapping_add(n);
            self.ring
                .word(self.ring.consumer)
                .store(self.cons, Ordering::Release);
        }
    }
}

/// Sets the `SOL_XDP` option `name` of `sock` to `value`.
///
/// # Safety
///
/// `T` must be the option's type without implicit padding, and what the
/// option does must be sound: addresses in `value` (`XDP_UMEM_REG`) must
/// point to memory that stays mapped while the kernel may use it and that
/// Rust code accesses only through raw pointers while the kernel may write
/// it.
unsafe fn set_xdp_opt<T>(sock: &OwnedFd, name: c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is readable for `size_of::<T>()` bytes; the caller
    // vouches for the option's effects.
    let ret = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_XDP,
            name,
            ptr::from_ref(value).cast::<c_void>(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Reads where the four rings sit in their mappings.
fn mmap_offsets(sock: &OwnedFd) -> Result<libc::xdp_mmap_offsets> {
    let zero = libc::xdp_ring_offset {
        producer: 0,
        consumer: 0,
        desc: 0,
        flags: 0,
    };
    let mut offsets = libc::xdp_mmap_offsets {
        rx: zero,
        tx: zero,
        fr: zero,
        cr: zero,
    };
    let mut len = size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
    // SAFETY: `offsets` is writable for `len` bytes and `len` is a valid
    // `socklen_t` the kernel updates.
    let ret = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_XDP,
            libc::XDP_MMAP_OFFSETS,
            ptr::from_mut(&mut offsets).cast::<c_void>(),
            &mut len,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error()).context("getsockopt XDP_MMAP_OFFSETS");
    }
    ensure!(
        len as usize == size_of::<libc::xdp_mmap_offsets>(),
        "kernel reports AF_XDP ring offsets without ring flags (needs Linux 5.4 or later)"
    );
    Ok(offsets)
}

/// Binds `sock` to queue [`QUEUE_ID`] of interface `ifindex` in copy mode.
///
/// The queue of a socket closed just before (say, by the previous run)
/// stays taken until the kernel has finished releasing that socket, which
/// it defers past an RCU grace period and a work item; meanwhile `bind()`
/// fails with `EBUSY`, so that error is retried for up to [`BIND_RETRY`].
fn bind(sock: &OwnedFd, ifindex: u32) -> io::Result<()> {
    let addr = libc::sockaddr_xdp {
        sxdp_family: libc::AF_XDP as u16,
        sxdp_flags: libc::XDP_COPY | libc::XDP_USE_NEED_WAKEUP,
        sxdp_ifindex: ifindex,
        sxdp_queue_id: QUEUE_ID,
        sxdp_shared_umem_fd: 0,
    };
    let start = Instant::now();
    loop {
        // SAFETY: `addr` is a valid `sockaddr_xdp` and we pass its size.
        let ret = unsafe {
            libc::bind(
                sock.as_raw_fd(),
                ptr::from_ref(&addr).cast::<libc::sockaddr>(),
                size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        };
        if ret == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EBUSY) || start.elapsed() >= BIND_RETRY {
            return Err(err);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// UMEM chunk size: one page, the largest the kernel accepts
/// (`xdp_umem_reg()` rejects chunks above `PAGE_SIZE`); 4096 on x86-64.
fn chunk_size() -> Result<usize> {
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(page)
        .ok()
        .filter(|&page| page.is_power_of_two() && page > XDP_PACKET_HEADROOM)
        .with_context(|| format!("unusable page size {page}"))
}

/// One end of a link over an AF_XDP socket in copy mode.
///
/// Dropping it first closes the BPF link, which detaches the XDP program,
/// then unmaps the rings and closes the socket (the kernel releases the
/// socket once both are gone), and last unmaps the UMEM, whose pages the
/// kernel keeps pinned until it has released the socket. The fields are
/// declared in that order and each releases its resource when dropped, so
/// an `open` failing halfway cleans up the same way.
pub struct XdpLink {
    /// BPF link holding the XDP program on the interface.
    _attachment: OwnedFd,
    /// RX ring: frames received into fill chunks.
    rx: ConsRing<libc::xdp_desc>,
    /// Fill ring: chunks lent to the kernel for receiving.
    fill: ProdRing<u64>,
    /// TX ring: frames to send.
    tx: ProdRing<libc::xdp_desc>,
    /// Completion ring: TX chunks the kernel is done with.
    completion: ConsRing<u64>,
    /// The AF_XDP socket.
    sock: OwnedFd,
    /// The UMEM all frames live in; dropped after the socket.
    umem: Mmap,
    /// Bytes per UMEM chunk.
    chunk_size: usize,
    /// Addresses of TX chunks neither queued nor in the kernel's hands.
    free_tx: Vec<u64>,
    /// Receive chunks done with that found the fill ring full.
    unfilled: Vec<u64>,
}

impl XdpLink {
    /// Opens an AF_XDP socket on `ifname` queue 0 in copy mode, with a UMEM
    /// of `frames` page-sized chunks (4096 bytes on x86-64; half for
    /// receive/fill, half for transmit), loads a tiny XDP program that
    /// redirects frames whose ethertype is `ethertype` (host order, e.g.
    /// 0x88b7) into the socket and passes all other frames to the stack, and
    /// attaches it to the interface (native XDP if the driver offers it,
    /// generic XDP otherwise).
    ///
    /// Only frames arriving on RX queue 0 reach the socket; on interfaces
    /// with several queues, steer the traffic there (or use one queue).
    /// Needs `CAP_NET_ADMIN` and `CAP_BPF` (or root), and no other XDP
    /// program attached to the interface.
    pub fn open(ifname: &str, ethertype: u16, frames: u32) -> Result<Self> {
        ensure!(
            frames >= 2,
            "AF_XDP needs at least 2 UMEM frames, got {frames}"
        );
        let chunk_size = chunk_size()?;
        let name =
            CString::new(ifname).with_context(|| format!("bad interface name {ifname:?}"))?;
        // SAFETY: `name` is a NUL-terminated string alive during the call.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::last_os_error()).with_context(|| format!("interface {ifname}"));
        }

        let rx_chunks = frames / 2;
        let tx_chunks = frames - rx_chunks;
        let ring_size = |chunks: u32| {
            chunks
                .checked_next_power_of_two()
                .context("AF_XDP ring too large")
        };
        let (rx_size, tx_size) = (ring_size(rx_chunks)?, ring_size(tx_chunks)?);
        // The kernel publishes a batch of received frames on the RX ring a
        // moment before it publishes having consumed their fill entries, so
        // for a moment the fill ring can look occupied by up to twice the
        // receive chunks; twice the room keeps recycling from failing.
        let fill_size = ring_size(rx_chunks.saturating_mul(2))?;
        let umem_len = (frames as usize)
            .checked_mul(chunk_size)
            .context("UMEM size overflows")?;
        let umem = Mmap::anonymous(umem_len).context("mmap UMEM")?;

        // SAFETY: plain socket(2) call.
        let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error()).context("socket(AF_XDP)");
        }
        // SAFETY: `fd` was just opened and nothing else owns it.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };

        let reg = libc::xdp_umem_reg {
            addr: umem.as_ptr() as u64,
            len: umem_len as u64,
            chunk_size: chunk_size as u32,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        // SAFETY: `xdp_umem_reg` has no padding. The UMEM stays mapped while
        // the socket lives (`XdpLink` drops it after the socket and rings,
        // and the kernel pins its pages until it lets go of them, so they
        // are never reused under it), and we touch it only through raw
        // pointers, each time in a chunk the kernel has handed to us.
        unsafe { set_xdp_opt(&sock, libc::XDP_UMEM_REG, &reg) }
            .context("XDP_UMEM_REG (is RLIMIT_MEMLOCK too low?)")?;
        for (opt, what, size) in [
            (libc::XDP_UMEM_FILL_RING, "XDP_UMEM_FILL_RING", fill_size),
            (
                libc::XDP_UMEM_COMPLETION_RING,
                "XDP_UMEM_COMPLETION_RING",
                tx_size,
            ),
            (libc::XDP_RX_RING, "XDP_RX_RING", rx_size),
            (libc::XDP_TX_RING, "XDP_TX_RING", tx_size),
        ] {
            let size = size as c_int;
            // SAFETY: ring sizes are plain `int`s.
            unsafe { set_xdp_opt(&sock, opt, &size) }
                .with_context(|| format!("setsockopt {what}"))?;
        }

        let off = mmap_offsets(&sock)?;
        let mut fill = ProdRing::new(Ring::open(
            &sock,
            &off.fr,
            fill_size,
            libc::XDP_UMEM_PGOFF_FILL_RING,
        )?);
        let completion = ConsRing::new(Ring::open(
            &sock,
            &off.cr,
            tx_size,
            libc::XDP_UMEM_PGOFF_COMPLETION_RING,
        )?);
        let rx = ConsRing::new(Ring::open(
            &sock,
            &off.rx,
            rx_size,
            libc::XDP_PGOFF_RX_RING as u64,
        )?);
        let tx = ProdRing::new(Ring::open(
            &sock,
            &off.tx,
            tx_size,
            libc::XDP_PGOFF_TX_RING as u64,
        )?);

        bind(&sock, ifindex).with_context(|| {
            format!("bind AF_XDP socket to {ifname} queue {QUEUE_ID} (copy mode)")
        })?;

        let chunk = chunk_size as u64;
        for i in 0..u64::from(rx_chunks) {
            ensure!(fill.push(i * chunk), "AF_XDP fill ring full");
        }
        fill.submit();
        let free_tx = (u64::from(rx_chunks)..u64::from(frames))
            .map(|i| i * chunk)
            .collect();

        let xskmap = create_xskmap()?;
        let program = load_program(ethertype, &xskmap)?;
        register_socket(&xskmap, &sock)?;
        let attachment =
            attach(&program, ifindex).with_context(|| format!("attach XDP program to {ifname}"))?;

        Ok(Self {
            _attachment: attachment,
            rx,
            fill,
            tx,
            completion,
            sock,
            umem,
            chunk_size,
            free_tx,
            unfilled: Vec::new(),
        })
    }

    /// Offset in the UMEM of the `len` bytes at `addr`, checked to lie
    /// inside it.
    fn umem_offset(&self, addr: u64, len: usize) -> Result<usize> {
        usize::try_from(addr)
            .ok()
            .filter(|&start| {
                start
                    .checked_add(len)
                    .is_some_and(|end| end <= self.umem.len)
            })
            .with_context(|| format!("AF_XDP descriptor {addr:#x}+{len} outside the UMEM"))
    }

    /// Start of the chunk holding UMEM address `addr`.
    fn chunk_of(&self, addr: u64) -> u64 {
        addr & !(self.chunk_size as u64 - 1)
    }

    /// Puts receive chunks on the fill ring that found no room there
    /// before, as far as there is room now.
    fn refill(&mut self) {
        if self.unfilled.is_empty() {
            return;
        }
        while let Some(&chunk) = self.unfilled.last() {
            if !self.fill.push(chunk) {
                break;
            }
            self.unfilled.pop();
        }
        self.fill.submit();
    }

    /// Takes back the TX chunks the kernel has finished sending.
    fn reclaim(&mut self) {
        let n = self.completion.available();
        for i in 0..n {
            let addr = self.completion.get(i);
            self.free_tx.push(self.chunk_of(addr));
        }
        self.completion.release(n);
    }

    /// Returns a free TX chunk, reclaiming completed ones and, if there are
    /// none, pushing out queued frames and waiting for some to complete.
    fn take_tx_chunk(&mut self) -> Result<u64> {
        if let Some(addr) = self.free_tx.pop() {
            return Ok(addr);
        }
        self.reclaim();
        if let Some(addr) = self.free_tx.pop() {
            return Ok(addr);
        }
        self.flush()?;
        let start = Instant::now();
        loop {
            if let Some(addr) = self.free_tx.pop() {
                return Ok(addr);
            }
            ensure!(
                start.elapsed() < TX_STALL,
                "AF_XDP: no TX chunk came back within {TX_STALL:?}"
            );
            std::thread::yield_now();
            self.reclaim();
        }
    }

    /// Has the kernel transmit what the TX ring holds.
    ///
    /// In copy mode frames go out only from `sendto()` (or `poll()`), and
    /// the TX ring's need-wakeup flag is maintained only by zero-copy
    /// drivers, so this always calls `sendto()`. Each call sends a bounded
    /// batch (32 frames by default); `EAGAIN` asks for another call, `EBUSY`
    /// reports a frame the device dropped and `ENOBUFS` a failed buffer
    /// allocation, none of which is fatal.
    fn kick_tx(&self) -> Result<()> {
        // SAFETY: a zero-length send reads no buffer and no address.
        let ret = unsafe {
            libc::sendto(
                self.sock.as_raw_fd(),
                ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                ptr::null(),
                0,
            )
        };
        if ret < 0 {
            let err = io::Error::last_os_error();
            if !matches!(
                err.raw_os_error(),
                Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::EINTR)
            ) {
                return Err(err).context("sendto on AF_XDP socket");
            }
        }
        Ok(())
    }

    /// Asks the kernel to refill its receive buffers from the fill ring if it
    /// says it needs waking up (only zero-copy drivers do).
    fn kick_fill(&self) {
        if self.fill.ring.needs_wakeup() {
            // SAFETY: a zero-length receive writes no buffer and no address.
            // The call is only a wakeup; errors leave nothing to handle.
            unsafe {
                libc::recvfrom(
                    self.sock.as_raw_fd(),
                    ptr::null_mut(),
                    0,
                    libc::MSG_DONTWAIT,
                    ptr::null_mut(),
                    ptr::null_mut(),
                )
            };
        }
    }

    /// The socket's `XDP_STATISTICS` counters.
    fn statistics(&self) -> io::Result<libc::xdp_statistics> {
        let mut stats = libc::xdp_statistics {
            rx_dropped: 0,
            rx_invalid_descs: 0,
            tx_invalid_descs: 0,
            rx_ring_full: 0,
            rx_fill_ring_empty_descs: 0,
            tx_ring_empty_descs: 0,
        };
        let mut len = size_of::<libc::xdp_statistics>() as libc::socklen_t;
        // SAFETY: `stats` is writable for `len` bytes and `len` is a valid
        // `socklen_t` the kernel updates.
        let ret = unsafe {
            libc::getsockopt(
                self.sock.as_raw_fd(),
                libc::SOL_XDP,
                libc::XDP_STATISTICS,
                ptr::from_mut(&mut stats).cast::<c_void>(),
                &mut len,
            )
        };
        if ret < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(stats)
        }
    }

    /// Waits until the socket is readable or `timeout` passes; returns
    /// whether frames may be ready.
    fn wait_readable(&self, timeout: Option<Duration>) -> Result<bool> {
        let millis = match timeout {
            None => -1,
            Some(left) if left.is_zero() => return Ok(false),
            Some(left) => {
                c_int::try_from(left.as_nanos().div_ceil(1_000_000)).unwrap_or(c_int::MAX)
            }
        };
        let mut pfd = libc::pollfd {
            fd: self.sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid `pollfd` and we pass a count of 1.
        let ret = unsafe { libc::poll(&mut pfd, 1, millis) };
        if ret < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err).context("poll on AF_XDP socket");
            }
        }
        Ok(true)
    }
}

impl Link for XdpLink {
    fn send(&mut self, frame: &[u8]) -> Result<()> {
        ensure!(
            !frame.is_empty() && frame.len() <= self.max_frame(),
            "frame of {} bytes: AF_XDP copy mode carries 1 to {} bytes",
            frame.len(),
            self.max_frame()
        );
        let addr = self.take_tx_chunk()?;
        let start = match self.umem_offset(addr, frame.len()) {
            Ok(start) => start,
            Err(err) => {
                self.free_tx.push(addr);
                return Err(err);
            }
        };
        // SAFETY: the destination lies inside the UMEM (checked above), in a
        // TX chunk that is ours: never handed to the kernel, or handed back
        // through the completion ring, so the kernel neither reads nor writes
        // it now. `frame` is a Rust slice, so it cannot overlap the UMEM,
        // which Rust code reaches only through raw pointers.
        unsafe {
            ptr::copy_nonoverlapping(frame.as_ptr(), self.umem.as_ptr().add(start), frame.len())
        };
        let desc = libc::xdp_desc {
            addr,
            len: frame.len() as u32,
            options: 0,
        };
        if !self.tx.push(desc) {
            self.free_tx.push(addr);
            bail!("AF_XDP TX ring full");
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.tx.submit();
        let start = Instant::now();
        loop {
            let queued = self.tx.unconsumed();
            if queued == 0 {
                break;
            }
            self.kick_tx()?;
            self.reclaim();
            ensure!(
                start.elapsed() < TX_STALL,
                "AF_XDP TX stalled: kernel left {queued} frames queued for {TX_STALL:?}"
            );
        }
        self.reclaim();
        Ok(())
    }

    fn recv(&mut self, timeout: Duration, f: &mut dyn FnMut(&[u8])) -> Result<usize> {
        self.refill();
        let deadline = Instant::now().checked_add(timeout);
        let n = loop {
            let n = self.rx.available();
            if n > 0 {
                break n;
            }
            self.kick_fill();
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if !self.wait_readable(left)? {
                return Ok(0);
            }
        };
        for i in 0..n {
            let desc = self.rx.get(i);
            let len = desc.len as usize;
            let start = self.umem_offset(desc.addr, len)?;
            // SAFETY: the range lies inside the UMEM (checked above), in a
            // chunk the kernel handed to us through the RX ring after writing
            // it; it will not write there again until we put the chunk back
            // on the fill ring below, after `f` has returned and the slice
            // is gone.
            let frame = unsafe { std::slice::from_raw_parts(self.umem.as_ptr().add(start), len) };
            f(frame);
            let chunk = self.chunk_of(desc.addr);
            if !self.fill.push(chunk) {
                self.unfilled.push(chunk);
            }
        }
        self.rx.release(n);
        self.fill.submit();
        Ok(n as usize)
    }

    /// Largest frame that fits in one chunk behind the receive headroom:
    /// `chunk_size - XDP_PACKET_HEADROOM`, 4096 - 256 = 3840 bytes with
    /// 4 KiB pages. The kernel drops longer received frames in copy mode
    /// without multi-buffer AF_XDP (see the module documentation), so
    /// 9000-byte jumbo frames do not fit.
    fn max_frame(&self) -> usize {
        self.chunk_size - XDP_PACKET_HEADROOM
    }

    /// The socket's `XDP_STATISTICS`: `rx_dropped` counts, among others,
    /// received frames too long for a chunk; `rx_fill_ring_empty_descs` and
    /// `rx_ring_full` count frames lost for want of buffers or ring room.
    fn counters(&self) -> Vec<(String, u64)> {
        let Ok(stats) = self.statistics() else {
            return Vec::new();
        };
        [
            ("rx_dropped", stats.rx_dropped),
            ("rx_invalid_descs", stats.rx_invalid_descs),
            ("tx_invalid_descs", stats.tx_invalid_descs),
            ("rx_ring_full", stats.rx_ring_full),
            ("rx_fill_ring_empty_descs", stats.rx_fill_ring_empty_descs),
            ("tx_ring_empty_descs", stats.tx_ring_empty_descs),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect()
    }
}
