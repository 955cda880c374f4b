// SPDX-License-Identifier: GPL-2.0

//! The block side of a disk on the storage personality, for any protocol:
//! blk-mq requests become personality commands on the personality's queue
//! of their hardware queue, and the personality's completions end them.
//!
//! This is all a link-layer block driver needs between blk-mq and the
//! personality: a powered-on disk ([`PoweredDisk`]) with its number
//! ([`DiskNumbers`]) and a watch on its net device ([`DeviceWatch`]). What
//! remains to the driver is its protocol ([`Protocol`]), how a disk is
//! configured, and the export's [`Geometry`].

use super::{frames::MAX_FRAMES, Command, Operation, Personality, Protocol, Refused, StorageDriver, TimerAction};
use crate::{
    block::mq::{
        self,
        gen_disk::{GenDisk, GenDiskBuilder},
        Op, Operations, QueueOptions, TagSet, TimeoutAction,
    },
    net::{
        device::NetDevice,
        ethernet::MacAddr,
        namespace::Namespace,
        notifier::{self, Event, EventHandler},
        rtnl::Rtnl,
    },
    prelude::*,
    str::CString,
    sync::{aref::ARef, Arc, ArcBorrow},
    time::Delta,
    ModuleMetadata,
};
use core::{
    marker::PhantomData,
    sync::atomic::{AtomicU64, Ordering},
};

/// What a driver's disks are: the protocol they speak and the module that
/// owns them (the blk-mq operations' `OwnerModule`; the 7.3 `GenDisk`
/// does not yet use it to pin the module while a disk is open).
pub trait DiskKind: Send + Sync + 'static {
    /// The protocol.
    type Protocol: Protocol;
    /// The module (a module's `crate::LocalModule`).
    type Module: ModuleMetadata;
}

/// The blk-mq operations of every disk of kind `K`.
pub struct Disk<K>(PhantomData<K>);

/// A disk's request: a blk-mq request of a [`Disk`].
pub type DiskRequest<K> = ARef<mq::Request<Disk<K>>>;

/// Ends requests when the personality reports them complete.
pub struct Completer<K>(PhantomData<K>);

impl<K> Completer<K> {
    /// The completer.
    pub const fn new() -> Self {
        Completer(PhantomData)
    }
}

impl<K> Default for Completer<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: DiskKind> StorageDriver for Completer<K> {
    type Buffer = DiskRequest<K>;
    type Protocol = K::Protocol;

    fn complete(&self, rq: Self::Buffer, status: Result) {
        // The personality held the only reference, so ending succeeds.
        if mq::Request::end(rq, status).is_err() {
            pr_err!("a completed request is still referenced\n");
        }
    }

    fn queue_space(&self, _queue: u32, _free: u32) {
        // Nothing to do: a request refused for a full queue went back to
        // blk-mq, which reruns the hardware queue when one of its requests
        // completes, or a few milliseconds later if none is in flight (a
        // refusal because the session's sequence had no number to spare).
    }
}

/// What the request path of one disk needs: its personality, one queue
/// per blk-mq hardware queue.
pub struct DiskQueue<K: DiskKind> {
    /// The personality carrying the disk's requests.
    pub personality: Arc<Personality<Completer<K>>>,
    /// Writes (and discards) fail with `EROFS`.
    pub read_only: bool,
}

/// The personality command for a block request; `EROFS` for a write to a
/// read-only disk, `EOPNOTSUPP` for operations the personality does not
/// carry.
fn command_for<K: DiskKind>(rq: &mq::Request<Disk<K>>, read_only: bool) -> Result<Command> {
    let op = match rq.op() {
        Op::Read => Operation::Read,
        Op::Write => Operation::Write,
        Op::Flush => Operation::Flush,
        Op::Discard => Operation::Discard,
        Op::WriteZeroes => Operation::WriteZeroes,
        Op::Other(_) => return Err(EOPNOTSUPP),
    };
    if read_only && op != Operation::Read && op != Operation::Flush {
        return Err(EROFS);
    }
    let (offset, length) = if op == Operation::Flush {
        (0, 0)
    } else {
        (rq.sector().checked_mul(512).ok_or(EINVAL)?, rq.bytes())
    };
    Ok(Command { op, offset, length, fua: rq.is_fua() })
}

fn end<K: DiskKind>(rq: DiskRequest<K>, status: Result) -> Result {
    // Only this reference exists; if ending failed anyway, blk-mq ends it
    // from the error returned.
    mq::Request::end(rq, status).map_err(|_| EIO)
}

#[vtable]
impl<K: DiskKind> Operations for Disk<K> {
    type QueueData = Arc<DiskQueue<K>>;
    type OwnerModule = K::Module;

    fn queue_rq(q: ArcBorrow<'_, DiskQueue<K>>, rq: DiskRequest<K>, _is_last: bool) -> Result {
        let command = match command_for(&rq, q.read_only) {
            Ok(c) => c,
            Err(e) => return end(rq, Err(e)),
        };
        // Each blk-mq hardware queue is a queue of the personality, so CPUs
        // mapped to different hardware queues have a FIFO, window and lock
        // each.
        match q.personality.queue(rq.hw_queue(), rq.tag(), rq, command) {
            Ok(()) => Ok(()),
            // blk-mq keeps the request and dispatches it again later.
            Err(Refused::Full(rq)) => {
                drop(rq);
                Err(ENOMEM)
            }
            Err(Refused::Invalid(rq, e)) => end(rq, Err(e)),
        }
    }

    fn commit_rqs(_q: ArcBorrow<'_, DiskQueue<K>>) {}

    fn complete(rq: DiskRequest<K>) {
        let _ = end(rq, Ok(()));
    }

    fn timeout(q: ArcBorrow<'_, DiskQueue<K>>, rq: &mq::TimedOut<Self>) -> TimeoutAction {
        match q.personality.expire(rq.hw_queue(), rq.tag(), |held| rq.is(held)) {
            TimerAction::Rearm(after) => {
                rq.set_timeout(after);
                TimeoutAction::ResetTimer
            }
            TimerAction::Stop => TimeoutAction::Done,
        }
    }
}

/// How many queues a disk gets for the setting `setting`: one per CPU, at
/// most `setting` of them (0: no limit but [`super::MAX_QUEUES`]).
pub fn queues_for(setting: u32) -> u32 {
    let cpus = crate::cpu::nr_cpu_ids().clamp(1, super::MAX_QUEUES);
    match setting {
        0 => cpus,
        n => n.min(cpus),
    }
}

/// The numbers a driver's disks take (`/dev/ebdN`): the lowest free one,
/// at most [`DiskNumbers::MAX`] at once. A driver keeps one in a static.
pub struct DiskNumbers {
    in_use: AtomicU64,
}

impl DiskNumbers {
    /// Most disks at once.
    pub const MAX: u32 = 64;

    /// None in use.
    pub const fn new() -> Self {
        DiskNumbers { in_use: AtomicU64::new(0) }
    }

    /// Takes the lowest free number; `ENOSPC` if all are in use.
    pub fn take(&'static self) -> Result<DiskNumber> {
        let mut current = self.in_use.load(Ordering::Relaxed);
        loop {
            let free = (!current).trailing_zeros();
            if free >= Self::MAX {
                return Err(ENOSPC);
            }
            match self.in_use.compare_exchange(current, current | (1 << free), Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Ok(DiskNumber { numbers: self, number: free }),
                Err(now) => current = now,
            }
        }
    }
}

impl Default for DiskNumbers {
    fn default() -> Self {
        Self::new()
    }
}

/// A disk number, free again when dropped.
pub struct DiskNumber {
    numbers: &'static DiskNumbers,
    number: u32,
}

impl DiskNumber {
    /// The number.
    pub fn get(&self) -> u32 {
        self.number
    }
}

impl Drop for DiskNumber {
    fn drop(&mut self) {
        self.numbers.in_use.fetch_and(!(1 << self.number), Ordering::AcqRel);
    }
}

/// Detaches a disk's personality when its net device is unregistered (or
/// leaves the namespace), so that its I/O ends instead of hanging.
pub struct DeviceWatch<K: DiskKind> {
    queue: Arc<DiskQueue<K>>,
    /// The watched device, by address: only compared, never followed.
    dev: usize,
}

impl<K: DiskKind> DeviceWatch<K> {
    /// Watches `dev` for `queue`'s disk until the registration is dropped.
    /// Process context.
    pub fn register(queue: Arc<DiskQueue<K>>, dev: &NetDevice) -> Result<Pin<KBox<notifier::Registration<Self>>>> {
        let dev = dev.as_raw() as usize;
        KBox::pin_init(notifier::Registration::new(DeviceWatch { queue, dev }), GFP_KERNEL)
    }
}

impl<K: DiskKind> EventHandler for DeviceWatch<K> {
    fn event(&self, dev: &NetDevice, event: Event, _rtnl: &Rtnl) {
        if event == Event::Unregister && dev.as_raw() as usize == self.dev && !self.queue.personality.is_detached() {
            pr_info!("net device {} left this namespace or is going away; ending its I/O\n", dev.name());
            self.queue.personality.detach();
        }
    }
}

/// The net device a disk is configured on, in the caller's namespace:
/// `EINVAL` if none is set, `ENODEV` if there is no such device (each
/// logged, for the `echo 1 > power` that failed). Process context.
pub fn configured_device(netdev: Option<&CString>) -> Result<ARef<NetDevice>> {
    let name = netdev.ok_or_else(|| {
        pr_err!("set netdev before powering on\n");
        EINVAL
    })?;
    let ns = Namespace::current()?;
    NetDevice::get_by_name(&ns, name).inspect_err(|_| {
        pr_err!("no net device {} in this namespace\n", name.to_str().unwrap_or("?"));
    })
}

/// What a disk shows the block layer.
#[derive(Clone, Copy, Debug)]
pub struct Geometry {
    /// Capacity, in 512-byte sectors.
    pub sectors: u64,
    /// Logical and physical block size.
    pub block_size: u32,
    /// The export has a write cache that flushes empty.
    pub write_cache: bool,
    /// Writes may ask to be durable at once (forced unit access).
    pub fua: bool,
    /// Longest discard, in bytes, if discards are carried.
    pub discard: Option<u32>,
    /// Longest write-zeroes request, in bytes, if carried.
    pub write_zeroes: Option<u32>,
    /// Writes fail with `EROFS`.
    pub read_only: bool,
}

/// A disk that is powered on: the personality carrying its requests, its
/// block device `/dev/NAMEn`, the watch on its net device and its number.
///
/// Dropping it detaches the personality first, ending what is in flight
/// (removing the disk waits for every request, and a server that is gone
/// would never answer), then removes the disk.
pub struct PoweredDisk<K: DiskKind> {
    queue: Arc<DiskQueue<K>>,
    name: CString,
    // Dropped in this order after `Drop::drop` detached the personality.
    _disk: GenDisk<Disk<K>>,
    _watch: Pin<KBox<notifier::Registration<DeviceWatch<K>>>>,
    _number: DiskNumber,
}

impl<K: DiskKind> PoweredDisk<K> {
    /// Adds the disk `prefix` and a number from `numbers`, of `geometry`,
    /// over `personality` (attached to `dev`, its server found): a blk-mq
    /// hardware queue per personality queue, as deep as a personality
    /// queue, with `timeout` as each request's response timer. Process
    /// context.
    pub fn add(
        personality: Arc<Personality<Completer<K>>>,
        dev: &NetDevice,
        prefix: &str,
        numbers: &'static DiskNumbers,
        timeout: Delta,
        geometry: Geometry,
    ) -> Result<Self> {
        let payload = personality.payload_per_frame();
        let (queues, depth) = (personality.queues(), personality.max_queue_len());
        let queue = Arc::new(DiskQueue { personality, read_only: geometry.read_only }, GFP_KERNEL)?;
        let watch = DeviceWatch::register(queue.clone(), dev)?;
        let number = numbers.take()?;
        let name = CString::try_from_fmt(format_args!("{}{}", prefix, number.get()))?;
        // Largest request: what fits the frame budget, in whole pages.
        let max_bytes = K::Protocol::MAX_REQUEST.min(payload.saturating_mul(MAX_FRAMES)) & !4095;
        // No I/O scheduler: the personality keeps its own FIFO and paces
        // it by the link; a scheduler would only defer each dispatch.
        let options = QueueOptions { timeout: Some(timeout), no_default_scheduler: true };
        let tagset = Arc::pin_init(TagSet::new_with(queues, depth, 1, options), GFP_KERNEL)?;
        let mut builder = GenDiskBuilder::new()
            .capacity_sectors(geometry.sectors)
            .logical_block_size(geometry.block_size)?
            .physical_block_size(geometry.block_size)?
            .max_hw_sectors(max_bytes / 512)?
            .write_cache(geometry.write_cache, geometry.fua);
        if let Some(bytes) = geometry.discard {
            builder = builder.max_discard_sectors(bytes / 512);
        }
        if let Some(bytes) = geometry.write_zeroes {
            builder = builder.max_write_zeroes_sectors(bytes / 512);
        }
        let disk = builder.build(format_args!("{}", name.to_str()?), tagset, queue.clone())?;
        disk.set_read_only(geometry.read_only);
        Ok(PoweredDisk { queue, name, _disk: disk, _watch: watch, _number: number })
    }

    /// The personality carrying the disk's requests.
    pub fn personality(&self) -> &Personality<Completer<K>> {
        &self.queue.personality
    }

    /// The disk's name (`ebd0`).
    pub fn name(&self) -> &CStr {
        &self.name
    }
}

impl<K: DiskKind> Drop for PoweredDisk<K> {
    fn drop(&mut self) {
        self.queue.personality.detach();
    }
}

/// One disk as a driver's configuration interface holds it: the settings
/// user space wrote, and the disk while it is powered on.
pub struct DiskSlot<S, D> {
    /// What user space set.
    pub settings: S,
    /// The disk, while powered on.
    pub disk: Option<D>,
}

impl<S: Default, D> Default for DiskSlot<S, D> {
    fn default() -> Self {
        DiskSlot { settings: S::default(), disk: None }
    }
}

impl<S, D> DiskSlot<S, D> {
    /// Changes the settings; `EBUSY` while powered on.
    pub fn set(&mut self, f: impl FnOnce(&mut S)) -> Result {
        if self.disk.is_some() {
            return Err(EBUSY);
        }
        f(&mut self.settings);
        Ok(())
    }

    /// Powers the disk on with `power_on`, or off (dropping it); nothing
    /// if it already is.
    pub fn power(&mut self, on: bool, power_on: impl FnOnce(&S) -> Result<D>) -> Result {
        match (self.disk.is_some(), on) {
            (false, true) => self.disk = Some(power_on(&self.settings)?),
            (true, false) => drop(self.disk.take()),
            _ => {}
        }
        Ok(())
    }

    /// The disk; `ENODEV` while powered off.
    pub fn powered(&self) -> Result<&D> {
        self.disk.as_ref().ok_or(ENODEV)
    }
}

/// A server address as a configuration interface takes it: a unicast MAC
/// address (`aa:bb:cc:dd:ee:ff`), or nothing or `discover` for none (the
/// server is discovered); `EINVAL` otherwise.
pub fn server_setting(text: &str) -> Result<Option<MacAddr>> {
    match text {
        "" | "discover" => Ok(None),
        text => MacAddr::parse_text(text).filter(MacAddr::is_valid_unicast).map(Some).ok_or(EINVAL),
    }
}
