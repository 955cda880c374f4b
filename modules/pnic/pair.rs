// SPDX-License-Identifier: GPL-2.0

//! A pair of pnics joined by an emulated wire, like a veth pair: what the two
//! NICs share, and the order in which a pair comes and goes.

use crate::{
    bus::Bus,
    capable::Port,
    end::End,
    mem::{DevMem, CHUNK},
    nic::Nic,
};
use kernel::{
    impl_has_work,
    net::{driver::Registration, peer_dma::Provider},
    new_work,
    prelude::*,
    str::CString,
    sync::Arc,
    workqueue::{OwnedQueue, QueueFlags, Work},
};

/// How a pair is built (the configfs attributes).
pub(crate) struct Settings {
    pub(crate) names: [Option<CString>; 2],
    /// Device memory of each NIC, in KiB.
    pub(crate) mem_kib: u32,
    /// Share of each NIC's memory for frames to send, in percent.
    pub(crate) tx_percent: u32,
    pub(crate) buses: [Option<Arc<Bus>>; 2],
    /// Link-level flow control (1) or none (0); see [`PairShared::flow_control`].
    pub(crate) flow_control: u32,
}

impl Default for Settings {
    fn default() -> Self {
        // 512 KiB: the memory of the paper's Myrinet NICs.
        Settings { names: [None, None], mem_kib: 512, tx_percent: 50, buses: [None, None], flow_control: 1 }
    }
}

/// What both NICs of a pair and their DMA engines share.
///
/// Engines run as work items on the pair's own queue (one pass at a time
/// per NIC, IDs 0 and 1), so the pair can wait for all of them to have
/// returned before it goes away.
///
/// # Invariants
///
/// The last `Arc` is dropped by [`Pair`]'s drop, after it drained the queue,
/// never by a pass: dropping the queue on one of its own workers would wait
/// for itself. Passes and the devices' driver states hold clones only while
/// the pair exists; a NIC's `dev` holds its device only while it is up, and
/// both devices are unregistered (so down) before the drain.
#[pin_data]
pub(crate) struct PairShared {
    #[pin]
    pub(crate) mem: DevMem,
    #[pin]
    nic0: Nic,
    #[pin]
    nic1: Nic,
    pub(crate) queue: OwnedQueue,
    /// Multiplies every modelled duration (the `time_scale` parameter).
    pub(crate) scale: u64,
    /// Whether a receiving NIC whose memory is full holds the sender back
    /// (as Myrinet's STOP/GO and Ethernet's pause frames do) instead of
    /// losing the frame.
    pub(crate) flow_control: bool,
    #[pin]
    engine0: Work<PairShared, 0>,
    #[pin]
    engine1: Work<PairShared, 1>,
}

impl_has_work! {
    impl HasWork<Self, 0> for PairShared { self.engine0 }
    impl HasWork<Self, 1> for PairShared { self.engine1 }
}

impl PairShared {
    fn new(name: &CStr, s: &Settings, scale: u64) -> Result<Arc<Self>> {
        let per_nic = s.mem_kib.checked_mul(1024).ok_or(EINVAL)?;
        // Every received frame takes at least one chunk of the receive pool.
        let wire_slots = (per_nic / CHUNK) as usize;
        Arc::pin_init(
            try_pin_init!(PairShared {
                mem <- DevMem::new(per_nic, s.tx_percent)?,
                nic0 <- Nic::new(0, wire_slots, s.buses[0].clone())?,
                nic1 <- Nic::new(1, wire_slots, s.buses[1].clone())?,
                // Two engines, each one pass at a time, on any CPU. They stand
                // for hardware running beside the CPUs, so they do not wait
                // behind the programs whose frames they carry.
                queue: OwnedQueue::new(name, QueueFlags::UNBOUND | QueueFlags::HIGH_PRIORITY, 2)?,
                scale,
                flow_control: s.flow_control != 0,
                engine0 <- new_work!("pnic::engine0"),
                engine1 <- new_work!("pnic::engine1"),
            }),
            GFP_KERNEL,
        )
    }

    /// NIC 0 or 1.
    pub(crate) fn nic(&self, i: usize) -> &Nic {
        if i == 0 { &self.nic0 } else { &self.nic1 }
    }
}

/// A powered pair: two registered net devices.
pub(crate) struct Pair {
    shared: Arc<PairShared>,
    ends: [Option<Registration<End>>; 2],
}

impl Pair {
    /// Registers both devices. Process context, RTNL not held.
    pub(crate) fn power_on(pair_name: &CStr, s: &Settings, scale: u64) -> Result<Self> {
        let queue_name = CString::try_from_fmt(fmt!("pnic-{}", pair_name.to_str().map_err(|_| EINVAL)?))?;
        let shared = PairShared::new(&queue_name, s, scale)?;
        let mut pair = Pair { shared, ends: [None, None] };
        for (i, name) in s.names.iter().enumerate() {
            let name = name.as_deref().unwrap_or(c"pnic%d");
            let provider = Provider::new(Port::new(pair.shared.clone(), i))?;
            let init = End::new(pair.shared.clone(), i, provider.clone());
            pair.ends[i] = Some(Registration::register_capable(name, init, &provider)?);
        }
        Ok(pair)
    }

    pub(crate) fn shared(&self) -> &Arc<PairShared> {
        &self.shared
    }

    /// The registered devices.
    pub(crate) fn devices(&self) -> impl Iterator<Item = &Registration<End>> {
        self.ends.iter().flatten()
    }

    /// End `i`'s device.
    #[cfg(CONFIG_KUNIT)]
    pub(crate) fn device(&self, i: usize) -> Option<&kernel::net::driver::Device<End>> {
        self.ends.get(i)?.as_ref().map(|r| r.device())
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        // Unregistering a device stops it first: its engine stops and lets go
        // of the device (see `End::stop`). The far engine may still run until
        // its own device goes; it finds this NIC down and drops on the wire.
        for end in &mut self.ends {
            drop(end.take());
        }
        // Both engines are stopped and queue nothing more: wait until every
        // pass has returned, so no code of this module runs after the pair
        // is gone (module unload follows the last pair).
        self.shared.queue.drain();
        for i in 0..2 {
            self.shared.free_queued(i);
        }
    }
}
