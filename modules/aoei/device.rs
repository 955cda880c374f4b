// SPDX-License-Identifier: GPL-2.0

//! One powered-on AoE disk: the storage personality on its net device, the
//! target found and measured (Query Config, then IDENTIFY), frames and
//! window narrowed to what the target accepts, and the block device.

use crate::{
    protocol::{Aoe, Target},
    AoeKind,
};
use kernel::{
    net::{
        ethernet::MacAddr,
        storage::{
            disk::{configured_device, queues_for, Completer, DiskNumbers, Geometry, PoweredDisk},
            Config, Personality,
        },
    },
    prelude::*,
    str::CString,
    time::Delta,
};

/// What user space configured before powering the disk on.
pub(crate) struct Settings {
    pub(crate) netdev: Option<CString>,
    /// The target's address; `None` asks the whole segment.
    pub(crate) server: Option<MacAddr>,
    /// The target's shelf and slot; `None` takes the first target that
    /// answers.
    pub(crate) target: Option<(u16, u8)>,
    pub(crate) queue_depth: u32,
    pub(crate) timeout_ms: u32,
    pub(crate) retries: u32,
    /// Hardware queues: one per CPU, at most this many (0: one per CPU).
    pub(crate) queues: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            netdev: None,
            server: None,
            target: None,
            queue_depth: 64,
            timeout_ms: 2000,
            retries: 8,
            queues: 0,
        }
    }
}

/// Discovery requests sent, and the wait after each.
const INFO_ATTEMPTS: u32 = 20;
const INFO_INTERVAL: Delta = Delta::from_millis(100);

/// The numbers of `/dev/aoeiN`.
static NUMBERS: DiskNumbers = DiskNumbers::new();

/// A disk that is powered on, with what discovery learnt of its target.
pub(crate) struct AoeDisk {
    disk: PoweredDisk<AoeKind>,
    target: Target,
}

impl AoeDisk {
    /// Attaches to the configured net device, finds and measures the
    /// target and adds `/dev/aoeiN`. Process context.
    pub(crate) fn power_on(s: &Settings) -> Result<Self> {
        let dev = configured_device(s.netdev.as_ref())?;
        let watched = dev.clone();
        let mtu = dev.mtu();
        let queues = queues_for(s.queues);
        let config = Config {
            server: s.server,
            frame_size: 0,
            max_queue: s.queue_depth,
            // Narrowed to the target's buffers once it has said how many.
            window: s.queue_depth,
            queues,
            max_retries: s.retries,
            timeout: Delta::from_millis(i64::from(s.timeout_ms)),
        };
        let personality = Personality::attach(dev, Completer::new(), Aoe::new(s.target)?, config)?;
        let target = personality.query_info(INFO_ATTEMPTS, INFO_INTERVAL).inspect_err(|e| match (s.target, *e) {
            (Some((shelf, slot)), ETIMEDOUT) => pr_err!("no AoE target e{}.{} answered\n", shelf, slot),
            (None, ETIMEDOUT) => pr_err!("no AoE target answered\n"),
            (_, e) => pr_err!("the AoE target refused: {:?}\n", e),
        })?;
        let (shelf, slot) = (target.shelf, target.slot);
        // The target drops what its buffers cannot hold: the queues share
        // them, at least one frame each.
        let window = (u32::from(target.buffer_count) / queues).clamp(1, s.queue_depth);
        // What the target takes and what was planned at attach (the MTU
        // may have changed since).
        let payload = target.payload(mtu).min(personality.payload_per_frame());
        personality.narrow(payload, window).inspect_err(|_| {
            pr_err!("AoE target e{}.{} takes no sector per frame at MTU {}\n", shelf, slot, mtu);
        })?;
        let geometry = Geometry {
            sectors: target.sectors,
            block_size: 512,
            // FLUSH CACHE empties the target's cache; ATA has no forced
            // unit access here.
            write_cache: true,
            fua: false,
            discard: None,
            write_zeroes: None,
            read_only: false,
        };
        let disk = PoweredDisk::add(personality, &watched, "aoei", &NUMBERS, config.timeout, geometry)?;
        pr_info!(
            "{} attached to {} target e{}.{}: {} sectors, {} bytes per frame, {} buffers, {} queue(s)\n",
            disk.name().to_str()?,
            watched.name(),
            shelf,
            slot,
            target.sectors,
            payload,
            target.buffer_count,
            queues
        );
        Ok(AoeDisk { disk, target })
    }

    /// The personality serving this disk.
    pub(crate) fn personality(&self) -> &Personality<Completer<AoeKind>> {
        self.disk.personality()
    }

    /// What discovery learnt about the target.
    pub(crate) fn target(&self) -> Target {
        self.target
    }

    /// The target's shelf and slot.
    pub(crate) fn address(&self) -> Option<(u16, u8)> {
        self.personality().protocol().address()
    }

    /// `aoeiN`.
    pub(crate) fn name(&self) -> &CStr {
        self.disk.name()
    }
}
