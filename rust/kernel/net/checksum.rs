// SPDX-License-Identifier: GPL-2.0

//! The Internet checksum (RFC 1071) as a NIC with checksum offload computes
//! it: summed while the frame is copied, once.
//!
//! C header: [`include/net/checksum.h`](srctree/include/net/checksum.h)

use crate::{bindings, prelude::*};

/// A running ones'-complement sum of 16-bit words (`__wsum`), not yet
/// folded. Sums are only meaningful over ranges that start at an even
/// offset of the packet, as every checksummed header does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartialSum(u32);

impl PartialSum {
    /// The sum of nothing.
    pub const ZERO: PartialSum = PartialSum(0);

    /// The sum of `data`.
    pub fn of(data: &[u8]) -> Self {
        Self::ZERO.add(data)
    }

    /// This sum with `data` (which follows what was summed so far at an
    /// even offset) added.
    pub fn add(self, data: &[u8]) -> Self {
        // Slices of kernel memory are far shorter than `i32::MAX`; a longer
        // one is summed in pieces.
        let mut sum = self.0;
        for piece in data.chunks(1 << 30) {
            // SAFETY: `piece` is valid for reads of its length.
            sum = unsafe { bindings::polynic_csum_partial(piece.as_ptr().cast(), piece.len() as i32, sum) };
        }
        PartialSum(sum)
    }

    /// Copies `src` into `dst` (of the same length, else `EINVAL`) and
    /// returns the sum of the bytes copied, in one pass.
    pub fn copy(src: &[u8], dst: &mut [u8]) -> Result<Self> {
        if src.len() != dst.len() || src.len() > i32::MAX as usize {
            return Err(EINVAL);
        }
        // SAFETY: Both are valid for `len` bytes, and do not overlap (a
        // shared and a mutable borrow).
        let sum = unsafe {
            bindings::polynic_csum_partial_copy(src.as_ptr().cast(), dst.as_mut_ptr().cast(), src.len() as i32)
        };
        Ok(PartialSum(sum))
    }

    /// The 16-bit checksum field this sum gives (folded and complemented),
    /// as its two bytes are stored in the packet.
    pub fn fold(self) -> [u8; 2] {
        // SAFETY: Pure arithmetic.
        let field = unsafe { bindings::polynic_csum_fold(self.0) };
        // The sum was taken over the bytes as they lie in memory, so the
        // field goes back in the same byte order.
        field.to_ne_bytes()
    }

    /// The `__wsum` value.
    pub(crate) fn raw(self) -> u32 {
        self.0
    }

    /// A `__wsum` from C.
    pub(crate) fn from_raw(sum: u32) -> Self {
        PartialSum(sum)
    }
}
