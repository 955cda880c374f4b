// SPDX-License-Identifier: GPL-2.0

//! `/dev/pnkblk0`: a RAM-backed block device that exists to exercise the
//! overlay's blk-mq additions from user space: request sector, length and
//! operation, copies to and from request pages, segment walks, tag lookup,
//! ending with an error, queue limits and features, and the timeout hook.
//!
//! With `black_hole_sector` set, requests touching that sector are never
//! completed: the timeout hook must end them with an error. With
//! `refused_sector` also set, requests touching that sector are refused
//! (`queue_rq` fails with `ENOMEM`, so blk-mq requeues them) until the
//! black-hole request times out; its timeout hook then looks the refused
//! request up by tag, which must not find it: blk-mq owns it, not the driver.

use kernel::{
    block::mq::{
        self,
        gen_disk::{GenDisk, GenDiskBuilder},
        Op, Operations, QueueOptions, TagSet, TimeoutAction,
    },
    error::code::{EIO, EOPNOTSUPP, ETIMEDOUT},
    new_spinlock,
    prelude::*,
    sync::{aref::ARef, Arc, SpinLock},
    time::Delta,
};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

module! {
    type: BlkTest,
    name: "polynic_blk_test",
    authors: ["polynic developers"],
    description: "RAM-backed block device exercising the polynic blk-mq overlay",
    license: "GPL",
    params: {
        capacity_mib: u64 {
            default: 16,
            description: "Device size in MiB",
        },
        black_hole_sector: i64 {
            default: -1,
            description: "Requests touching this sector never complete (-1: none)",
        },
        refused_sector: i64 {
            default: -1,
            description: "Requests touching this sector are refused until a timeout (-1: none)",
        },
    },
}

const SECTOR: u64 = 512;
/// Lookups of the refused tag (see the timeout hook).
const PROBES: usize = 5;
/// Most timeout periods the held request waits for a refusal to probe.
const MAX_PROBE_WAITS: u64 = 40;
/// Most times a request is refused (blk-mq retries every few milliseconds).
const MAX_REFUSALS: u64 = 5000;
/// Per-request limit advertised to the block layer: 32 KiB.
const MAX_HW_SECTORS: u32 = 64;

#[pin_data]
struct Ramdisk {
    #[pin]
    data: SpinLock<KVVec<u8>>,
    black_hole: Option<u64>,
    refused: Option<u64>,
    /// Tag of the request being refused, plus one (0: none refused yet).
    refused_tag: AtomicU64,
    /// Set once the timeout hook has probed the refused request's tag.
    refusing_done: AtomicBool,
    /// Refusals so far; bounded so that a refused request can never block
    /// the queue for good.
    refusals: AtomicU64,
    /// Timeout periods spent waiting for a refusal to probe.
    probe_waits: AtomicU64,
    tagset: Arc<TagSet<Ramdisk>>,
    largest_request: AtomicU64,
}

impl Ramdisk {
    fn serve(&self, rq: &mq::Request<Self>) -> Result {
        // A flush addresses no sectors (its sector field is not meaningful).
        if rq.op() == Op::Flush {
            return Ok(());
        }
        let start = rq.sector().checked_mul(SECTOR).ok_or(EIO)?;
        let len = u64::from(rq.bytes());
        let mut data = self.data.lock();
        let end = start.checked_add(len).ok_or(EIO)?;
        if end > data.len() as u64 {
            return Err(EIO);
        }
        let range = start as usize..end as usize;
        match rq.op() {
            Op::Read => rq.copy_to_request(0, &data[range]),
            Op::Write => {
                // Walk the segments (the copy helper serves reads) and check
                // they cover the request exactly.
                let dst = &mut data[range];
                let mut covered = 0usize;
                for seg in rq.segments() {
                    let at = seg.offset() as usize;
                    let part = dst.get_mut(at..at + seg.len() as usize).ok_or(EIO)?;
                    seg.copy_to(part)?;
                    covered += seg.len() as usize;
                }
                if covered == dst.len() { Ok(()) } else { Err(EIO) }
            }
            Op::Flush => Ok(()), // handled above
            Op::Discard | Op::WriteZeroes => {
                data[range].fill(0);
                Ok(())
            }
            Op::Other(_) => Err(EOPNOTSUPP),
        }
    }

    fn touches(rq: &mq::Request<Self>, sector: Option<u64>) -> bool {
        let sectors = u64::from(rq.bytes()).div_ceil(SECTOR);
        sector.is_some_and(|s| s >= rq.sector() && s < rq.sector() + sectors.max(1))
    }
}

#[vtable]
impl Operations for Ramdisk {
    type QueueData = Arc<Ramdisk>;

    fn queue_rq(disk: kernel::sync::ArcBorrow<'_, Ramdisk>, rq: ARef<mq::Request<Self>>, _is_last: bool) -> Result {
        disk.largest_request.fetch_max(u64::from(rq.bytes()), Relaxed);
        if Self::touches(&rq, disk.black_hole) {
            // Not ended: the block layer owns it again only through the
            // timeout hook below.
            pr_info!("tag {} at sector {} held until it times out\n", rq.tag(), rq.sector());
            return Ok(());
        }
        if Self::touches(&rq, disk.refused)
            && !disk.refusing_done.load(Relaxed)
            && disk.refusals.fetch_add(1, Relaxed) < MAX_REFUSALS
        {
            // Refused: blk-mq takes it back and dispatches it again later.
            if disk.refused_tag.swap(u64::from(rq.tag()) + 1, Relaxed) == 0 {
                pr_info!("refusing tag {} at sector {}\n", rq.tag(), rq.sector());
            }
            return Err(ENOMEM);
        }
        let status = disk.serve(&rq);
        // Only this reference exists, so ending cannot fail.
        mq::Request::end(rq, status).map_err(|_| EIO)
    }

    fn commit_rqs(_disk: kernel::sync::ArcBorrow<'_, Ramdisk>) {}

    fn complete(rq: ARef<mq::Request<Self>>) {
        let _ = mq::Request::end(rq, Ok(()));
    }

    fn timeout(disk: kernel::sync::ArcBorrow<'_, Ramdisk>, rq: &mq::TimedOut<Self>) -> TimeoutAction {
        pr_info!("tag {} timed out\n", rq.tag());
        // With refusals configured, wait (a bounded number of periods) until
        // a request has been refused, so that there is a tag to probe.
        if disk.refused.is_some()
            && disk.refused_tag.load(Relaxed) == 0
            && disk.probe_waits.fetch_add(1, Relaxed) < MAX_PROBE_WAITS
        {
            rq.set_timeout(Delta::from_millis(500));
            return TimeoutAction::ResetTimer;
        }
        // A request `queue_rq` refused belongs to blk-mq until dispatched
        // again: the lookup must not hand it out.
        if let Some(tag) = disk.refused_tag.load(Relaxed).checked_sub(1) {
            // blk-mq retries the refused request every few milliseconds, and
            // while one retry runs `queue_rq` the driver does own it; so
            // probe a few times, a millisecond apart. Before the fix every
            // probe found it.
            let found = (0..PROBES)
                .filter(|_| {
                    kernel::time::delay::fsleep(Delta::from_millis(1));
                    disk.tagset.tag_to_rq(rq.hw_queue(), tag as u32).is_some()
                })
                .count();
            if found == PROBES {
                pr_err!("refused tag {} handed out by the lookup\n", tag);
            } else {
                pr_info!("refused tag {} not found: owned by blk-mq ({}/{} probes)\n", tag, PROBES - found, PROBES);
            }
            disk.refusing_done.store(true, Relaxed);
        }
        // Find it again by tag, as a driver matching responses would; the
        // lookup takes the reference that ending it needs.
        let Some(found) = disk.tagset.tag_to_rq(rq.hw_queue(), rq.tag()) else {
            pr_err!("tag {} not found in flight\n", rq.tag());
            return TimeoutAction::ResetTimer;
        };
        if !rq.is(&found) {
            pr_err!("tag {} maps to another request\n", rq.tag());
            return TimeoutAction::ResetTimer;
        }
        pr_info!("tag {} found in flight\n", rq.tag());
        match mq::Request::end(found, Err(ETIMEDOUT)) {
            Ok(()) => TimeoutAction::Done,
            Err(_) => TimeoutAction::ResetTimer,
        }
    }
}

struct BlkTest {
    _disk: GenDisk<Ramdisk>,
    state: Arc<Ramdisk>,
}

impl kernel::Module for BlkTest {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let bytes = module_parameters::capacity_mib.value().checked_mul(1 << 20).ok_or(EINVAL)?;
        let bytes = usize::try_from(bytes).map_err(|_| EINVAL)?;
        let hole = module_parameters::black_hole_sector.value();
        let refused = module_parameters::refused_sector.value();
        let backing = KVVec::from_elem(0u8, bytes, GFP_KERNEL)?;
        let timeout_options = QueueOptions { timeout: Some(Delta::from_millis(1500)), ..Default::default() };
        let tagset = Arc::pin_init(TagSet::new_with(1, 64, 1, timeout_options), GFP_KERNEL)?;
        let lookup = tagset.clone();
        let state = Arc::pin_init(
            pin_init!(Ramdisk {
                data <- new_spinlock!(backing),
                black_hole: u64::try_from(hole).ok(),
                refused: u64::try_from(refused).ok(),
                refused_tag: AtomicU64::new(0),
                refusing_done: AtomicBool::new(false),
                refusals: AtomicU64::new(0),
                probe_waits: AtomicU64::new(0),
                tagset: lookup,
                largest_request: AtomicU64::new(0),
            }),
            GFP_KERNEL,
        )?;
        let disk = GenDiskBuilder::new()
            .capacity_sectors(bytes as u64 / SECTOR)
            .logical_block_size(512)?
            .physical_block_size(4096)?
            .max_hw_sectors(MAX_HW_SECTORS)?
            .max_segments(8)?
            .max_segment_size(4096)?
            .write_cache(true, true)
            .max_discard_sectors(2048)
            .max_write_zeroes_sectors(2048)
            .build(fmt!("pnkblk0"), tagset, state.clone())?;
        pr_info!("pnkblk0 ready, {} MiB\n", bytes >> 20);
        Ok(BlkTest { _disk: disk, state })
    }
}

impl Drop for BlkTest {
    fn drop(&mut self) {
        pr_info!(
            "polynic_blk_test: largest request {} bytes\n",
            self.state.largest_request.load(Relaxed)
        );
    }
}
