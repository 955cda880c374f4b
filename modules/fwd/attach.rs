// SPDX-License-Identifier: GPL-2.0

//! One device the router is attached to: how it hooks the device's receive
//! path (a receive handler for the conventional path, a claim of the NIC
//! for the paths through device memory), and a watch that lets go of the
//! device when it goes away (unregistered, or moved to another namespace),
//! so that the device is never held.

use crate::{capable::DeviceRouter, conventional::Router, counters::Counters, Mode};
use kernel::{
    net::{
        device::NetDevice,
        namespace::Namespace,
        notifier::{self, Event, EventHandler},
        peer_dma::{CapRef, Claim, HeaderMode},
        rtnl::{self, Rtnl},
        rx_handler,
    },
    new_mutex,
    prelude::*,
    str::CStr,
    sync::{aref::ARef, Arc, Mutex},
};

/// How the router sees the device's frames.
enum Hooked {
    /// The conventional path: a receive handler, before the stack.
    Handler(rx_handler::Registration<Router>),
    /// A path through device memory: the NIC is claimed.
    Claim(Claim),
}

/// The device and its hook while the device is there.
struct Hold {
    dev: ARef<NetDevice>,
    mode: Mode,
    hooked: Hooked,
}

impl Hold {
    /// Unhooks and lets go of the device.
    fn release(self, rtnl: &Rtnl) {
        match self.hooked {
            Hooked::Handler(handler) => handler.unregister(rtnl),
            // Waits a grace period: no delivery runs after it.
            Hooked::Claim(claim) => drop(claim),
        }
    }
}

#[pin_data]
struct Hook {
    /// `None` once the device went away. Taken with RTNL held (the watch
    /// runs under it, and mode changes take it first).
    #[pin]
    hold: Mutex<Option<Hold>>,
    /// The device's address, to recognise its events (never dereferenced).
    dev: usize,
}

/// Lets go of the device when it is unregistered, and when the watch
/// itself is dropped (the notifier then replays `Unregister` for every
/// device).
struct Watch(Arc<Hook>);

impl EventHandler for Watch {
    fn event(&self, dev: &NetDevice, event: Event, rtnl: &Rtnl) {
        if event != Event::Unregister || dev.as_raw() as usize != self.0.dev {
            return;
        }
        if let Some(hold) = self.0.hold.lock().take() {
            hold.release(rtnl);
        }
    }
}

/// A device the router is attached to.
pub(crate) struct Attachment {
    hook: Arc<Hook>,
    pub(crate) counters: Arc<Counters>,
    // Dropped last: its drop detaches.
    _watch: Pin<KBox<notifier::Registration<Watch>>>,
}

/// Hooks `dev` for `mode`.
fn hook(dev: &ARef<NetDevice>, mode: Mode, counters: &Arc<Counters>, rtnl: &Rtnl) -> Result<Hooked> {
    let header = match mode {
        Mode::Conventional => {
            let router = Arc::new(Router { counters: counters.clone() }, GFP_KERNEL)?;
            let handler = rx_handler::Registration::register(rtnl, dev.clone(), router).inspect_err(|e| {
                if *e == EBUSY {
                    pr_err!("{} has a receive handler already (bridge, bond, or attached)\n", dev.name());
                }
            })?;
            return Ok(Hooked::Handler(handler));
        }
        Mode::InPlace => HeaderMode::InPlace,
        // Bytes fit: 34.
        Mode::HeaderCopy => HeaderMode::Copy(crate::capable::COPIED as u8),
    };
    let Some(cap) = CapRef::lookup(dev) else {
        pr_err!("{} is not a capable NIC: only the conventional path is available\n", dev.name());
        return Err(EOPNOTSUPP);
    };
    let consumer = DeviceRouter::new(dev.clone(), mode, counters.clone())?;
    Ok(Hooked::Claim(cap.claim(header, consumer)?))
}

impl Attachment {
    /// Attaches to the device `name` in the caller's namespace, with the
    /// header-copy path on a capable NIC and the conventional path
    /// elsewhere. `ENODEV` if there is none, `EBUSY` if it has a receive
    /// handler or a claim already (a bridge port, another router).
    /// Process context.
    pub(crate) fn attach(name: &CStr) -> Result<Self> {
        let ns = Namespace::current()?;
        let dev = NetDevice::get_by_name(&ns, name).inspect_err(|_| {
            pr_err!("no net device {} in this namespace\n", name.to_str().unwrap_or("?"));
        })?;
        let counters = Arc::new(Counters::default(), GFP_KERNEL)?;
        let dev_id = dev.as_raw() as usize;
        let hook_state = Arc::pin_init(pin_init!(Hook { hold <- new_mutex!(None), dev: dev_id }), GFP_KERNEL)?;
        // Watch first: an unregistration that starts once the device is
        // hooked then always finds the watch.
        let watch = KBox::pin_init(notifier::Registration::new(Watch(hook_state.clone())), GFP_KERNEL)?;
        {
            let rtnl = rtnl::lock();
            // Still listed under RTNL: its `Unregister` has not been sent
            // yet, and will reach the watch. (Gone meanwhile: it was sent
            // before the watch existed.)
            match NetDevice::get_by_index(&ns, dev.ifindex()) {
                Ok(d) if d.as_raw() == dev.as_raw() => (),
                _ => return Err(ENODEV),
            }
            let mode = if CapRef::lookup(&dev).is_some() { Mode::HeaderCopy } else { Mode::Conventional };
            let hooked = hook(&dev, mode, &counters, &rtnl)?;
            *hook_state.hold.lock() = Some(Hold { dev, mode, hooked });
        }
        Ok(Attachment { hook: hook_state, counters, _watch: watch })
    }

    /// Whether the device is still there.
    pub(crate) fn is_attached(&self) -> bool {
        self.hook.hold.lock().is_some()
    }

    /// The path in use; `None` once the device went away.
    pub(crate) fn mode(&self) -> Option<Mode> {
        self.hook.hold.lock().as_ref().map(|h| h.mode)
    }

    /// Switches to `mode`: `EOPNOTSUPP` for a path through device memory
    /// on a NIC that is not capable, `ENODEV` once the device went away.
    /// Frames received during the switch go to the stack. Process context.
    pub(crate) fn set_mode(&self, mode: Mode) -> Result {
        let rtnl = rtnl::lock();
        let mut hold = self.hook.hold.lock();
        let current = (*hold).as_ref().ok_or(ENODEV)?;
        if current.mode == mode {
            return Ok(());
        }
        if mode != Mode::Conventional && CapRef::lookup(&current.dev).is_none() {
            pr_err!("{} is not a capable NIC: only the conventional path is available\n", current.dev.name());
            return Err(EOPNOTSUPP);
        }
        // A device has one receive handler and one claim: the old hook goes
        // first. If the new one fails, the old mode is hooked again.
        let Some(old) = hold.take() else { return Err(ENODEV) };
        let (dev, old_mode) = (old.dev.clone(), old.mode);
        old.release(&rtnl);
        let (mode, hooked) = match hook(&dev, mode, &self.counters, &rtnl) {
            Ok(h) => (mode, h),
            Err(e) => {
                let restored = hook(&dev, old_mode, &self.counters, &rtnl)?;
                *hold = Some(Hold { dev, mode: old_mode, hooked: restored });
                return Err(e);
            }
        };
        *hold = Some(Hold { dev, mode, hooked });
        Ok(())
    }
}
