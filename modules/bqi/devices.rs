// SPDX-License-Identifier: GPL-2.0

//! The devices endpoints are attached to: one demultiplexer per device,
//! hooked as its receive handler while it has endpoints, and a watch that
//! ends a device's endpoints and lets go of it when it is unregistered (or
//! moved to another namespace), so the device is never held.

use crate::{
    demux::{Demux, FlowSpec},
    endpoint::Endpoint,
};
use kernel::{
    net::{
        device::NetDevice,
        namespace::Namespace,
        notifier::{Event, EventHandler},
        rtnl::{self, Rtnl},
        rx_handler,
    },
    prelude::*,
    sync::{aref::ARef, Arc},
};

kernel::sync::global_lock! {
    // SAFETY: Initialised in the module initialiser, before the misc device
    // (the only way in) is registered.
    unsafe(uninit) static DEVICES: Mutex<KVec<Attached>> = KVec::new();
}

/// Initialises the device list. Called once, from the module initialiser.
pub(crate) fn init() {
    // SAFETY: Called exactly once, before any other use (see `DEVICES`).
    unsafe { DEVICES.init() };
}

/// Frees the device list's memory at module exit, when every endpoint is
/// gone (open files hold the module) and so is every device entry.
pub(crate) fn exit() {
    let list = core::mem::replace(&mut *DEVICES.lock(), KVec::new());
    if !list.is_empty() {
        pr_warn!("{} device(s) still attached at exit\n", list.len());
    }
    drop(list);
}

/// A device with endpoints.
struct Attached {
    /// The device's address, to recognise it (never dereferenced).
    dev: usize,
    demux: Arc<Demux>,
    handler: rx_handler::Registration<Demux>,
}

/// Attaches an endpoint to `dev`: hooks the device if it has no endpoint
/// yet, then enters the endpoint (built by `make` with its index) in the
/// device's tables. `EBUSY` if the device has another receive handler
/// (a bridge port, the forwarding personality).
pub(crate) fn attach(
    ns: &Namespace,
    dev: &ARef<NetDevice>,
    bqi: u16,
    flow: Option<FlowSpec>,
    make: impl FnOnce(u16) -> Result<Arc<Endpoint>>,
) -> Result<(u16, Arc<Endpoint>, Arc<Demux>)> {
    let rtnl = rtnl::lock();
    // Still registered under RTNL: its unregistration, if it comes, will
    // find it in the list.
    match NetDevice::get_by_index(ns, dev.ifindex()) {
        Ok(d) if d.as_raw() == dev.as_raw() => (),
        _ => return Err(ENODEV),
    }
    let mut devices = DEVICES.lock();
    let id = dev.as_raw() as usize;
    let demux = match devices.iter().find(|a| a.dev == id) {
        Some(a) => a.demux.clone(),
        None => {
            // Room first: a failed push would drop the registration, whose
            // drop takes RTNL, which is held here.
            devices.reserve(1, GFP_KERNEL)?;
            let demux = Demux::new()?;
            let handler = rx_handler::Registration::register(&rtnl, dev.clone(), demux.clone()).inspect_err(|e| {
                if *e == EBUSY {
                    pr_err!("{} has a receive handler already (bridge, bond, forwarding)\n", dev.name());
                }
            })?;
            if let Err(e) = devices.push_within_capacity(Attached { dev: id, demux: demux.clone(), handler }) {
                // Unreachable after the reservation; unhook under our RTNL.
                e.0.handler.unregister(&rtnl);
                return Err(ENOMEM);
            }
            demux
        }
    };
    // The endpoint is built (allocating, sleeping) between choosing its
    // index and entering it; the list's mutex keeps other insertions out.
    let entered = demux.reserve(bqi, flow.as_ref()).and_then(|index| {
        let endpoint = make(index)?;
        if let Err(e) = demux.enter(index, flow, &endpoint) {
            demux.remove(&endpoint, flow.as_ref());
            return Err(e);
        }
        Ok((index, endpoint))
    });
    if demux.is_empty() {
        unhook(&mut devices, id, &rtnl);
    }
    let (index, endpoint) = entered?;
    Ok((index, endpoint, demux))
}

/// Takes `endpoint` out of its device's tables; unhooks the device when it
/// was the last. Process context.
pub(crate) fn detach(demux: &Arc<Demux>, endpoint: &Arc<Endpoint>, flow: Option<&FlowSpec>) {
    let rtnl = rtnl::lock();
    let mut devices = DEVICES.lock();
    demux.remove(endpoint, flow);
    if demux.is_empty() {
        if let Some(a) = devices.iter().find(|a| Arc::ptr_eq(&a.demux, demux)) {
            let id = a.dev;
            unhook(&mut devices, id, &rtnl);
        }
    }
}

fn unhook(devices: &mut KVec<Attached>, id: usize, rtnl: &Rtnl) {
    if let Some(pos) = devices.iter().position(|a| a.dev == id) {
        if let Ok(a) = devices.remove(pos) {
            a.handler.unregister(rtnl);
        }
    }
}

/// Ends the endpoints of devices that go away.
pub(crate) struct Watch;

impl EventHandler for Watch {
    fn event(&self, dev: &NetDevice, event: Event, rtnl: &Rtnl) {
        if event != Event::Unregister {
            return;
        }
        let id = dev.as_raw() as usize;
        let mut devices = DEVICES.lock();
        let Some(pos) = devices.iter().position(|a| a.dev == id) else { return };
        let Ok(a) = devices.remove(pos) else { return };
        drop(devices);
        a.handler.unregister(rtnl);
        a.demux.end_all();
    }
}
