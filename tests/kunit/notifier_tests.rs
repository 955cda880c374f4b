// SPDX-License-Identifier: GPL-2.0

//! Device notifications: registration replays existing devices, and
//! unregistration replays their removal.

use kernel::prelude::*;

#[kunit_tests(polynic_notifier)]
mod tests {
    use kernel::prelude::*;
    use crate::VETH_A;
    use core::sync::atomic::{AtomicU32, Ordering::Relaxed};
    use kernel::net::{
        device::NetDevice,
        notifier::{Event, EventHandler, Registration},
        rtnl::Rtnl,
    };
    use kernel::sync::Arc;

    struct Counts {
        registered: AtomicU32,
        unregistered: AtomicU32,
        saw_veth: AtomicU32,
    }

    struct Watcher(Arc<Counts>);

    impl EventHandler for Watcher {
        fn event(&self, dev: &NetDevice, event: Event, _rtnl: &Rtnl) {
            match event {
                Event::Register => {
                    self.0.registered.fetch_add(1, Relaxed);
                    if dev.name().as_bytes() == VETH_A.to_bytes() {
                        self.0.saw_veth.fetch_add(1, Relaxed);
                    }
                }
                Event::Unregister => {
                    self.0.unregistered.fetch_add(1, Relaxed);
                }
                _ => {}
            }
        }
    }

    #[test]
    fn registration_replays_devices_both_ways() -> Result {
        let counts = Arc::new(
            Counts { registered: AtomicU32::new(0), unregistered: AtomicU32::new(0), saw_veth: AtomicU32::new(0) },
            GFP_KERNEL,
        )?;
        let reg = KBox::pin_init(Registration::new(Watcher(counts.clone())), GFP_KERNEL)?;
        let seen = counts.registered.load(Relaxed);
        // lo, pnk0 and pnk1 at least.
        assert!(seen >= 3);
        assert_eq!(counts.saw_veth.load(Relaxed), 1);
        assert_eq!(counts.unregistered.load(Relaxed), 0);
        drop(reg);
        assert_eq!(counts.unregistered.load(Relaxed), seen);
        Ok(())
    }
}
