//! The XDP side of the AF_XDP transport: a one-entry XSKMAP, a
//! hand-assembled program that steers one ethertype into it, and its
//! attachment to the interface, by raw `bpf(2)` calls.

use super::*;

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
pub(super) fn create_xskmap() -> Result<OwnedFd> {
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

/// `prog_flags` bit of a program that handles multi-buffer frames.
const BPF_F_XDP_HAS_FRAGS: u32 = 1 << 5;

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
pub(super) fn load_program(ethertype: u16, map: &OwnedFd) -> Result<OwnedFd> {
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
        // Frames may span several buffers (multi-buffer XDP): the program
        // reads only the Ethernet header, always in the first.
        prog_flags: BPF_F_XDP_HAS_FRAGS,
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
pub(super) fn register_socket(map: &OwnedFd, sock: &OwnedFd) -> Result<()> {
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
pub(super) fn attach(prog: &OwnedFd, ifindex: u32) -> Result<OwnedFd> {
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

