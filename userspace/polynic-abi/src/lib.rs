//! Wire formats and user-space ABI of polynic.
//!
//! Each format lives in one `core`-only file that the kernel modules compile
//! verbatim (through `#[path]`), so the kernel and user space cannot drift
//! apart. This crate adds nothing to those files but a crate root.
#![no_std]

pub mod ebd;
