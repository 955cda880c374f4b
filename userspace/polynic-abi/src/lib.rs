//! Wire formats and user-space ABI of polynic.
//!
//! Each format lives in one `core`-only file that the kernel compiles
//! verbatim: the overlay's `.import` mechanism (`scripts/apply-overlay.sh`)
//! copies it into the kernel tree, e.g. `ebd.rs` becomes
//! `rust/kernel/net/storage/wire.rs` through
//! `rust/kernel/net/storage/wire.rs.import`, so the kernel and user space
//! cannot drift apart (`bqi.rs` becomes `rust/kernel/net/bqi.rs`). This crate adds nothing to those files but a crate
//! root.
//!
//! `aoe.rs` is the ATA over Ethernet (revision 1) wire format the kernel's
//! AoE initiator (`modules/aoei`) speaks to unmodified targets such as
//! `vblade`; it becomes `rust/kernel/net/aoe.rs`.
#![no_std]

pub mod aoe;
pub mod bqi;
pub mod ebd;
