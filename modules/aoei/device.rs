// SPDX-License-Identifier: GPL-2.0

//! One powered-on AoE disk: the storage personality on its net device, the
//! target found and measured (Query Config, then IDENTIFY), and the block
//! device sized to what the target accepts.

use crate::{
    protocol::{Aoe, Target},
    AoeKind,
};
use kernel::{
    block::mq::{
        gen_disk::{GenDisk, GenDiskBuilder},
        QueueOptions, TagSet,
    },
    net::{
        device::NetDevice,
        ethernet::MacAddr,
        namespace::Namespace,
        notifier,
        storage::{
            disk::{queues_for, Completer, DeviceWatch, Disk, DiskNumber, DiskNumbers, DiskQueue},
            frames::MAX_FRAMES,
            Config, Personality, Protocol,
        },
    },
    prelude::*,
    str::CString,
    sync::Arc,
    time::Delta,
};

/// What user space configured before powering the disk on.
pub(crate) struct Settings {
    pub(crate) netdev: Option<CString>,
    /// The target's address; `None` asks the whole segment.
    pub(crate) server: Option<MacAddr>,
    pub(crate) shelf: u16,
    pub(crate) slot: u8,
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
            shelf: 0,
            slot: 1,
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

/// A disk that is powered on.
pub(crate) struct AoeDisk {
    queue: Arc<DiskQueue<AoeKind>>,
    target: Target,
    name: CString,
    // Dropped in this order after `Drop::drop` detached the personality.
    _disk: GenDisk<Disk<AoeKind>>,
    _watch: Pin<KBox<notifier::Registration<DeviceWatch<AoeKind>>>>,
    _number: DiskNumber,
}

impl AoeDisk {
    /// Attaches to the configured net device, finds and measures the
    /// target and adds `/dev/aoeiN`. Process context.
    pub(crate) fn power_on(s: &Settings) -> Result<Self> {
        let netdev = s.netdev.as_ref().ok_or_else(|| {
            pr_err!("set netdev before powering on\n");
            EINVAL
        })?;
        let ns = Namespace::current()?;
        let dev = NetDevice::get_by_name(&ns, netdev).inspect_err(|_| {
            pr_err!("no net device {} in this namespace\n", netdev.to_str().unwrap_or("?"));
        })?;
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
        let protocol = Aoe::new(s.shelf, s.slot)?;
        let personality = Personality::attach(dev, Completer::new(), protocol, config)?;
        let target = personality.query_info(INFO_ATTEMPTS, INFO_INTERVAL).inspect_err(|e| {
            if *e == ETIMEDOUT {
                pr_err!("no AoE target e{}.{} answered\n", s.shelf, s.slot);
            } else {
                pr_err!("AoE target e{}.{} refused: {:?}\n", s.shelf, s.slot, e);
            }
        })?;
        // The target drops what its buffers cannot hold: the queues share
        // them, at least one frame each.
        let window = (u32::from(target.buffer_count) / queues).clamp(1, s.queue_depth);
        let payload = target.payload(mtu);
        personality.narrow(payload, window).inspect_err(|_| {
            pr_err!("AoE target e{}.{} takes no sector per frame at MTU {}\n", s.shelf, s.slot, mtu);
        })?;
        let queue = Arc::new(DiskQueue { personality, read_only: false }, GFP_KERNEL)?;
        let watch = DeviceWatch::register(queue.clone(), &watched)?;
        drop(watched);
        let number = NUMBERS.take()?;
        let name = CString::try_from_fmt(fmt!("aoei{}", number.get()))?;

        // Largest request: what fits the frame budget, in whole pages.
        let max_bytes = Aoe::MAX_REQUEST.min(payload.saturating_mul(MAX_FRAMES)) & !4095;
        let options = QueueOptions {
            timeout: Some(Delta::from_millis(i64::from(s.timeout_ms))),
            no_default_scheduler: true,
        };
        let tagset = Arc::pin_init(TagSet::new_with(queues, s.queue_depth, 1, options), GFP_KERNEL)?;
        let disk = GenDiskBuilder::new()
            .capacity_sectors(target.sectors)
            .logical_block_size(512)?
            .physical_block_size(512)?
            .max_hw_sectors(max_bytes / 512)?
            // The target's cache is flushed with FLUSH CACHE; ATA has no
            // forced unit access here.
            .write_cache(true, false)
            .build(fmt!("{}", name.to_str()?), tagset, queue.clone())?;
        pr_info!(
            "{} attached to {} target e{}.{}: {} sectors, {} bytes per frame, {} buffers, {} queue(s)\n",
            name.to_str()?,
            netdev.to_str()?,
            s.shelf,
            s.slot,
            target.sectors,
            payload,
            target.buffer_count,
            queues
        );
        Ok(AoeDisk { queue, target, name, _disk: disk, _watch: watch, _number: number })
    }

    /// The personality serving this disk.
    pub(crate) fn personality(&self) -> &Personality<Completer<AoeKind>> {
        &self.queue.personality
    }

    /// What discovery learnt about the target.
    pub(crate) fn target(&self) -> Target {
        self.target
    }

    /// `aoeiN`.
    pub(crate) fn name(&self) -> &CStr {
        &self.name
    }
}

impl Drop for AoeDisk {
    fn drop(&mut self) {
        // End what is in flight first: removing the disk waits for every
        // request, and a target that is gone would never answer.
        self.queue.personality.detach();
    }
}
