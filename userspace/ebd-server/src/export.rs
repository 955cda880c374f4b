//! Backing stores: a file or block device per export, and the operations
//! the protocol asks of them.

use polynic_abi::ebd::{
    ExportInfo, Status, EXPORT_DISCARD, EXPORT_FLUSH, EXPORT_READ_ONLY, EXPORT_WRITE_ZEROES, SECTOR_SIZE,
};
use std::{
    fs::{File, OpenOptions},
    io::{IoSlice, IoSliceMut},
    os::unix::io::AsRawFd,
    path::PathBuf,
    ptr::NonNull,
    str::FromStr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

/// Most buffers one vectored system call takes (Linux's `UIO_MAXIOV`).
const IOV_MAX: usize = 1024;

/// `PATH` or `PATH,ro` from the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportSpec {
    /// File or block device.
    pub path: PathBuf,
    /// Refuse writes.
    pub read_only: bool,
}

impl FromStr for ExportSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (path, read_only) = match s.rsplit_once(',') {
            Some((p, "ro")) => (p, true),
            Some((p, "rw")) => (p, false),
            Some((_, other)) => return Err(format!("unknown export option {other:?} (expected ro or rw)")),
            None => (s, false),
        };
        if path.is_empty() {
            return Err("empty export path".into());
        }
        Ok(ExportSpec { path: PathBuf::from(path), read_only })
    }
}

/// Why an export could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The path could not be opened or measured.
    #[error("cannot open export {path}: {source}")]
    Io {
        /// The export's path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Its size is not a whole number of sectors.
    #[error("export {0} is {1} bytes, not a multiple of 512")]
    Unaligned(PathBuf, u64),
}

/// A whole export mapped read-only into the server's address space
/// (shared, so it shows what the page cache holds), from which reads are
/// answered: the kernel copies each payload from the page cache into the
/// frame it sends, where reading into a buffer first would copy it twice.
///
/// The server never reads the mapping itself; it only hands the kernel
/// addresses in it ([`Span`]). So a file cut short under the server, or a
/// device that goes, fails the send with `EFAULT` instead of raising
/// `SIGBUS` in the server.
///
/// Type invariant: `base..base + len` is mapped for as long as the value
/// lives.
#[derive(Debug)]
pub struct Mapping {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: The mapping belongs to the process, not to a thread; the server
// never dereferences it, and unmaps it only when the last owner drops it.
unsafe impl Send for Mapping {}
// SAFETY: As above: sharing it only shares addresses handed to the kernel.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps the first `len` bytes of `file` (open for reading).
    fn new(file: &File, len: u64) -> std::io::Result<Self> {
        let len = usize::try_from(len).map_err(|_| std::io::Error::from_raw_os_error(libc::ENOMEM))?;
        if len == 0 {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        // SAFETY: A new shared read-only mapping chosen by the kernel; it
        // aliases no Rust object and is only ever read by the kernel.
        let base =
            unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), 0) };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let base = NonNull::new(base.cast()).ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENOMEM))?;
        Ok(Mapping { base, len })
    }

    /// The `len` bytes from `offset` on, if they lie within the mapping.
    pub fn span(&self, offset: u64, len: usize) -> Option<Span> {
        let start = usize::try_from(offset).ok()?;
        if start.checked_add(len)? > self.len {
            return None;
        }
        // SAFETY: `start + len <= self.len`: the pointer stays within the
        // mapping (or one past its end for an empty span).
        let ptr = unsafe { self.base.as_ptr().add(start) };
        Some(Span { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the range is mapped, and no span of
        // it is used after its last owner is gone (the outbox holds one for
        // as long as its frames point into it).
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// Bytes of a mapped export, for the kernel to copy into a frame. Valid
/// while its [`Mapping`] lives; whoever holds a span keeps that alive.
#[derive(Clone, Copy, Debug)]
pub struct Span {
    ptr: *const u8,
    len: usize,
}

impl Span {
    /// Its length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Its address, for an `iovec`.
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr
    }

    /// Its bytes.
    ///
    /// # Safety
    ///
    /// The mapping must still be mapped, and the file must cover the whole
    /// span (else the read raises `SIGBUS`).
    #[cfg(test)]
    pub unsafe fn read(&self) -> &[u8] {
        // SAFETY: The caller guarantees the bytes are mapped and backed.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// An open export.
#[derive(Debug)]
pub struct Export {
    file: File,
    size: u64,
    read_only: bool,
    regular_file: bool,
    /// The export mapped, to answer reads from (`None`: reads copy).
    mapping: Option<Arc<Mapping>>,
    /// Cleared once sending from the mapping failed: reads copy from then on.
    mapped: AtomicBool,
}

impl Export {
    /// Opens `spec` (read-write unless read-only); with `map`, maps it to answer reads from, when it can
    /// be mapped (if not, reads copy).
    pub fn open_with(spec: &ExportSpec, map: bool) -> Result<Self, OpenError> {
        let io = |source| OpenError::Io { path: spec.path.clone(), source };
        let file = OpenOptions::new().read(true).write(!spec.read_only).open(&spec.path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        let regular_file = meta.is_file();
        let size = if regular_file { meta.len() } else { block_device_size(&file).map_err(io)? };
        if size % u64::from(SECTOR_SIZE) != 0 {
            return Err(OpenError::Unaligned(spec.path.clone(), size));
        }
        let mapping = if map { Mapping::new(&file, size).ok().map(Arc::new) } else { None };
        let mapped = AtomicBool::new(mapping.is_some());
        Ok(Export { file, size, read_only: spec.read_only, regular_file, mapping, mapped })
    }

    /// The mapping to answer reads from, unless reads copy.
    pub fn mapping(&self) -> Option<&Arc<Mapping>> {
        self.mapping.as_ref().filter(|_| self.mapped.load(Ordering::Relaxed))
    }

    /// Makes reads copy from now on (sending from the mapping failed);
    /// returns whether they did not already.
    pub fn stop_mapping(&self) -> bool {
        self.mapped.swap(false, Ordering::Relaxed)
    }

    /// What an Info request reports.
    pub fn info(&self) -> ExportInfo {
        let mut flags = EXPORT_FLUSH;
        if self.read_only {
            flags |= EXPORT_READ_ONLY;
        }
        if self.regular_file && !self.read_only {
            flags |= EXPORT_DISCARD | EXPORT_WRITE_ZEROES;
        }
        ExportInfo { size: self.size, block_size: SECTOR_SIZE, flags }
    }

    /// Checks that `[offset, offset + len)` lies within the export.
    pub fn check_range(&self, offset: u64, len: u64) -> Result<(), Status> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(Status::OutOfRange),
        }
    }

    /// Fills `bufs`, in order, from the bytes at `offset`: one system call
    /// for all of them unless the export returns less. `bufs` is used up on
    /// the way.
    pub fn read_vectored(&self, offset: u64, mut bufs: &mut [IoSliceMut<'_>]) -> Result<(), Status> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        self.check_range(offset, total as u64)?;
        transfer_all(offset, total, |off| {
            let count = bufs.len().min(IOV_MAX) as libc::c_int;
            // SAFETY: `IoSliceMut` is ABI-compatible with `iovec`; the first
            // `count` slices are live, writable and exclusively borrowed for
            // the call.
            let n = unsafe { libc::preadv(self.file.as_raw_fd(), bufs.as_ptr().cast(), count, off) };
            if n > 0 {
                IoSliceMut::advance_slices(&mut bufs, n as usize);
            }
            n
        })
    }

    /// Writes `data` at `offset`; with `fua`, durable before returning.
    pub fn write(&self, offset: u64, data: &[u8], fua: bool) -> Result<(), Status> {
        self.write_vectored(offset, &mut [IoSlice::new(data)], fua)
    }

    /// Writes `bufs`, in order, from `offset` on: one system call for all
    /// of them unless the export takes less; with `fua`, durable before
    /// returning. `bufs` is used up on the way.
    pub fn write_vectored(&self, offset: u64, mut bufs: &mut [IoSlice<'_>], fua: bool) -> Result<(), Status> {
        self.writable()?;
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        self.check_range(offset, total as u64)?;
        transfer_all(offset, total, |off| {
            let count = bufs.len().min(IOV_MAX) as libc::c_int;
            // SAFETY: `IoSlice` is ABI-compatible with `iovec`; the first
            // `count` slices are live and only read by the call.
            let n = unsafe { libc::pwritev(self.file.as_raw_fd(), bufs.as_ptr().cast(), count, off) };
            if n > 0 {
                IoSlice::advance_slices(&mut bufs, n as usize);
            }
            n
        })?;
        if fua {
            self.file.sync_data().map_err(|_| Status::IoError)?;
        }
        Ok(())
    }

    /// Makes every completed write durable (fsync).
    pub fn flush(&self) -> Result<(), Status> {
        self.file.sync_all().map_err(|_| Status::IoError)
    }

    /// Deallocates a range (files only).
    pub fn discard(&self, offset: u64, len: u64) -> Result<(), Status> {
        self.fallocate(offset, len, libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE)
    }

    /// Zeroes a range (files only): zero-range allocation where the file
    /// system has it, else a hole (tmpfs), else written zeroes.
    pub fn write_zeroes(&self, offset: u64, len: u64) -> Result<(), Status> {
        self.fallocate(offset, len, libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE)
            .or_else(|_| self.fallocate(offset, len, libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE))
            .or_else(|_| {
                let zeroes = vec![0u8; 1 << 16];
                let mut at = offset;
                let end = offset + len;
                while at < end {
                    let n = (end - at).min(zeroes.len() as u64) as usize;
                    self.write(at, &zeroes[..n], false)?;
                    at += n as u64;
                }
                Ok(())
            })
    }

    fn writable(&self) -> Result<(), Status> {
        if self.read_only {
            Err(Status::ReadOnly)
        } else {
            Ok(())
        }
    }

    fn fallocate(&self, offset: u64, len: u64, mode: libc::c_int) -> Result<(), Status> {
        self.writable()?;
        if !self.regular_file {
            return Err(Status::Unsupported);
        }
        self.check_range(offset, len)?;
        if len == 0 {
            return Ok(());
        }
        let (Ok(off), Ok(n)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
            return Err(Status::OutOfRange);
        };
        // SAFETY: fallocate only reads its integer arguments; the descriptor
        // is open for as long as `self.file` lives.
        let rc = unsafe { libc::fallocate(self.file.as_raw_fd(), mode, off, n) };
        if rc == 0 {
            Ok(())
        } else {
            Err(Status::IoError)
        }
    }
}

/// Moves `total` bytes from position `at` on with `call`, one positioned
/// vectored system call each time, which carries on where the previous one
/// stopped and returns what the system call did. A system call that moves
/// nothing (end of file) or fails is an I/O error; an interrupted one is
/// repeated.
fn transfer_all(mut at: u64, total: usize, mut call: impl FnMut(libc::off_t) -> isize) -> Result<(), Status> {
    let mut left = total;
    while left > 0 {
        let off = libc::off_t::try_from(at).map_err(|_| Status::OutOfRange)?;
        match call(off) {
            0 => return Err(Status::IoError),
            n if n < 0 => {
                if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                    return Err(Status::IoError);
                }
            }
            n => {
                at += n as u64;
                left = left.saturating_sub(n as usize);
            }
        }
    }
    Ok(())
}

fn block_device_size(file: &File) -> std::io::Result<u64> {
    let mut size: u64 = 0;
    // BLKGETSIZE64 = _IOR(0x12, 114, size_t)
    const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;
    // SAFETY: The ioctl writes one u64 through the pointer, which points at
    // a live, writable u64.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), BLKGETSIZE64, &mut size as *mut u64) };
    if rc == 0 {
        Ok(size)
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn export_of(len: usize) -> (Export, tempfile::NamedTempFile) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&vec![7u8; len]).unwrap();
        (Export::open_with(&ExportSpec { path: f.path().into(), read_only: true }, true).unwrap(), f)
    }

    #[test]
    fn spans_stay_within_the_mapping() {
        let (e, _f) = export_of(8192);
        let m = e.mapping().unwrap();
        assert_eq!(m.span(8192 - 512, 512).map(|s| s.len()), Some(512));
        assert!(m.span(8192 - 511, 512).is_none());
        assert!(m.span(u64::MAX, 1).is_none());
        assert!(m.span(1, usize::MAX).is_none());
        // An empty file cannot be mapped: its reads copy.
        assert!(export_of(0).0.mapping().is_none());
    }

    /// Why the server may send from a mapping: when the file is cut short
    /// under it, the kernel's copy of the span fails with EFAULT, where
    /// reading the span in the server would raise SIGBUS.
    #[test]
    fn a_span_past_a_shortened_file_fails_the_system_call_not_the_server() {
        let (e, f) = export_of(16384);
        let span = e.mapping().unwrap().span(8192, 4096).unwrap();
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: The span is mapped (the export holds the mapping), and
        // the file covers it: the kernel reads it.
        let n = unsafe { libc::write(fds[1], span.as_ptr().cast(), span.len()) };
        assert_eq!(n, 4096);
        f.as_file().set_len(4096).unwrap();
        // SAFETY: As above; the file no longer covers the span.
        let n = unsafe { libc::write(fds[1], span.as_ptr().cast(), span.len()) };
        assert_eq!((n, std::io::Error::last_os_error().raw_os_error()), (-1, Some(libc::EFAULT)));
        for fd in fds {
            // SAFETY: Both descriptors are ours and closed once.
            unsafe { libc::close(fd) };
        }
    }
}
