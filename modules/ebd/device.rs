// SPDX-License-Identifier: GPL-2.0

//! One powered-on EBD disk: the storage personality on its net device, the
//! export's geometry from the server, the block device, and a watch on the
//! net device so that its removal ends every request instead of hanging.

use crate::EbdKind;
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
            ebd::Ebd,
            frames::MAX_FRAMES,
            wire::{ExportInfo, EXPORT_DISCARD, EXPORT_FLUSH, EXPORT_READ_ONLY, EXPORT_WRITE_ZEROES, MAX_REQUEST_LEN},
            Config, Personality,
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
    pub(crate) server: Option<MacAddr>,
    pub(crate) export: u16,
    pub(crate) frame_size: u32,
    pub(crate) queue_depth: u32,
    pub(crate) read_only: bool,
    pub(crate) timeout_ms: u32,
    pub(crate) retries: u32,
    pub(crate) window: u32,
    /// Hardware queues: one per CPU, at most this many (0: one per CPU).
    pub(crate) queues: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            netdev: None,
            server: None,
            export: 0,
            frame_size: 0,
            queue_depth: 64,
            read_only: false,
            timeout_ms: 2000,
            retries: 8,
            window: 0,
            queues: 0,
        }
    }
}

/// Info requests sent to find the server, and the wait after each.
const INFO_ATTEMPTS: u32 = 20;
const INFO_INTERVAL: Delta = Delta::from_millis(100);

/// The numbers of `/dev/ebdN`.
static NUMBERS: DiskNumbers = DiskNumbers::new();

/// A disk that is powered on.
pub(crate) struct EbdDisk {
    queue: Arc<DiskQueue<EbdKind>>,
    info: ExportInfo,
    name: CString,
    // Dropped in this order after `Drop::drop` detached the personality.
    _disk: GenDisk<Disk<EbdKind>>,
    _watch: Pin<KBox<notifier::Registration<DeviceWatch<EbdKind>>>>,
    _number: DiskNumber,
}

impl EbdDisk {
    /// Attaches to the configured net device, asks the server for the
    /// export's geometry and adds `/dev/ebdN`. Process context.
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
        let queues = queues_for(s.queues);
        let config = Config {
            server: s.server,
            frame_size: s.frame_size,
            max_queue: s.queue_depth,
            window: match s.window {
                0 => s.queue_depth.saturating_mul(4).max(32),
                n => n,
            },
            queues,
            max_retries: s.retries,
            timeout: Delta::from_millis(i64::from(s.timeout_ms)),
        };
        let personality = Personality::attach(dev, Completer::new(), Ebd::new(s.export), config)?;
        let info = personality.query_info(INFO_ATTEMPTS, INFO_INTERVAL).inspect_err(|e| {
            if *e == ETIMEDOUT {
                pr_err!("no server answered for export {}\n", s.export);
            } else {
                pr_err!("the server refused export {}: {:?}\n", s.export, e);
            }
        })?;
        let read_only = s.read_only || info.flags & EXPORT_READ_ONLY != 0;
        let payload = personality.payload_per_frame();
        let queue = Arc::new(DiskQueue { personality, read_only }, GFP_KERNEL)?;
        let watch = DeviceWatch::register(queue.clone(), &watched)?;
        drop(watched);
        let number = NUMBERS.take()?;
        let name = CString::try_from_fmt(fmt!("ebd{}", number.get()))?;

        // Largest request: what fits the frame budget, in whole pages.
        let max_bytes = MAX_REQUEST_LEN.min(payload.saturating_mul(MAX_FRAMES)) & !4095;
        // No I/O scheduler: the personality keeps its own FIFO and paces
        // it by the link; a scheduler would only defer each dispatch.
        let options = QueueOptions {
            timeout: Some(Delta::from_millis(i64::from(s.timeout_ms))),
            no_default_scheduler: true,
        };
        let tagset = Arc::pin_init(TagSet::new_with(queues, s.queue_depth, 1, options), GFP_KERNEL)?;
        let mut builder = GenDiskBuilder::new()
            .capacity_sectors(info.size / 512)
            .logical_block_size(info.block_size)?
            .physical_block_size(info.block_size)?
            .max_hw_sectors(max_bytes / 512)?
            .write_cache(info.flags & EXPORT_FLUSH != 0, info.flags & EXPORT_FLUSH != 0);
        if info.flags & EXPORT_DISCARD != 0 {
            builder = builder.max_discard_sectors(MAX_REQUEST_LEN / 512);
        }
        if info.flags & EXPORT_WRITE_ZEROES != 0 {
            builder = builder.max_write_zeroes_sectors(MAX_REQUEST_LEN / 512);
        }
        let disk = builder.build(fmt!("{}", name.to_str()?), tagset, queue.clone())?;
        disk.set_read_only(read_only);
        pr_info!(
            "{} attached to {} export {}: {} bytes, block size {}, {} bytes per frame, {} queue(s){}\n",
            name.to_str()?,
            netdev.to_str()?,
            s.export,
            info.size,
            info.block_size,
            payload,
            queues,
            if read_only { ", read-only" } else { "" }
        );
        Ok(EbdDisk { queue, info, name, _disk: disk, _watch: watch, _number: number })
    }

    /// The personality serving this disk.
    pub(crate) fn personality(&self) -> &Personality<Completer<EbdKind>> {
        &self.queue.personality
    }

    /// The export's geometry.
    pub(crate) fn info(&self) -> ExportInfo {
        self.info
    }

    /// `ebdN`.
    pub(crate) fn name(&self) -> &CStr {
        &self.name
    }
}

impl Drop for EbdDisk {
    fn drop(&mut self) {
        // End what is in flight first: removing the disk waits for every
        // request, and a server that is gone would never answer.
        self.queue.personality.detach();
    }
}
