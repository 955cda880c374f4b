// SPDX-License-Identifier: GPL-2.0

//! A Rust net device driver on the overlay: `pnkloop%d` sends every frame
//! back to itself through NAPI, so a frame transmitted on it must reach a
//! protocol handler bound to it, and its counters must show the traffic.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use kernel::net::{
    driver::{Device, Driver, Stats, TxVerdict},
    napi::{Napi, NapiPoll},
    skb::SkBuff,
};
use kernel::prelude::*;
use kernel::{new_spinlock, sync::SpinLock};

/// Frames the loop device holds between transmit and receive.
const RING: usize = 64;

#[pin_data]
pub(crate) struct Loop {
    #[pin]
    napi: Napi<Loop>,
    #[pin]
    ring: SpinLock<KVec<SkBuff>>,
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    tx_dropped: AtomicU64,
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
}

impl Loop {
    pub(crate) fn new() -> impl PinInit<Self, Error> {
        try_pin_init!(Loop {
            napi <- Napi::new(),
            ring <- new_spinlock!(KVec::with_capacity(RING, GFP_KERNEL)?),
            tx_packets: AtomicU64::new(0),
            tx_bytes: AtomicU64::new(0),
            tx_dropped: AtomicU64::new(0),
            rx_packets: AtomicU64::new(0),
            rx_bytes: AtomicU64::new(0),
        })
    }
}

#[vtable]
impl Driver for Loop {
    fn setup(dev: &Device<Self>) -> Result {
        dev.data().napi.add(dev);
        Ok(())
    }

    fn open(dev: &Device<Self>) -> Result {
        dev.data().napi.enable();
        dev.set_carrier(true);
        Ok(())
    }

    fn stop(dev: &Device<Self>) -> Result {
        dev.set_carrier(false);
        dev.data().napi.disable();
        // Frames still in the ring stay there (delivered after the next
        // open, or freed with the device state). Emptying it here would take
        // the ring lock with softirqs enabled while the poll takes it in
        // softirq context, which lockdep rightly rejects: the overlay has no
        // BH-disabling lock yet.
        Ok(())
    }

    fn start_xmit(dev: &Device<Self>, skb: SkBuff) -> TxVerdict {
        let me = dev.data();
        let len = u64::from(skb.len());
        if me.ring.lock().push_within_capacity(skb).is_err() {
            // The ring is full: the rejected buffer is freed with the error.
            me.tx_dropped.fetch_add(1, Relaxed);
            return TxVerdict::Done;
        }
        me.tx_packets.fetch_add(1, Relaxed);
        me.tx_bytes.fetch_add(len, Relaxed);
        me.napi.schedule();
        TxVerdict::Done
    }

    fn stats(dev: &Device<Self>) -> Stats {
        let me = dev.data();
        Stats {
            rx_packets: me.rx_packets.load(Relaxed),
            rx_bytes: me.rx_bytes.load(Relaxed),
            tx_packets: me.tx_packets.load(Relaxed),
            tx_bytes: me.tx_bytes.load(Relaxed),
            tx_dropped: me.tx_dropped.load(Relaxed),
            rx_dropped: 0,
        }
    }
}

impl NapiPoll for Loop {
    fn poll(dev: &Device<Self>, napi: &Napi<Self>, budget: i32) -> i32 {
        let me = dev.data();
        let mut done = 0;
        while done < budget {
            let next = {
                let mut ring = me.ring.lock();
                if ring.is_empty() { None } else { ring.remove(0).ok() }
            };
            let Some(skb) = next else { break };
            me.rx_bytes.fetch_add(u64::from(skb.len()), Relaxed);
            if napi.receive(dev, skb).is_ok() {
                me.rx_packets.fetch_add(1, Relaxed);
            }
            done += 1;
        }
        if done < budget {
            napi.complete_done(done);
        }
        done
    }
}

#[kunit_tests(polynic_net_driver)]
mod tests {
    use super::*;
    use crate::packet_tests::{send, wait_for, Catcher, TYPE_HANDLED};
    use core::sync::atomic::AtomicU32;
    use kernel::net::{driver::Registration, namespace::Namespace, device::NetDevice, packet, rtnl};

    #[test]
    fn frames_sent_on_a_rust_device_come_back_through_napi() -> Result {
        let reg = Registration::<Loop>::register(c"pnkloop%d", Loop::new())?;
        let dev = reg.device();
        assert!(dev.name().as_bytes().starts_with(b"pnkloop"));
        assert!(dev.mac_addr().is_some_and(|m| m.is_valid_unicast() && m.is_locally_administered()));
        // Found by lookup like any device.
        let found = NetDevice::get_by_index(Namespace::init(), dev.ifindex())?;
        assert!(core::ptr::eq(&*found, &**dev));
        drop(found);
        {
            let rtnl = rtnl::lock();
            dev.open(&rtnl)?;
        }
        assert!(dev.is_running());
        let me = NetDevice::get_by_index(Namespace::init(), dev.ifindex())?;
        let catcher = Catcher { src: dev.mac_addr().ok_or(EINVAL)?, good: AtomicU32::new(0), other: AtomicU32::new(0) };
        let handler = KBox::pin_init(packet::Registration::new(TYPE_HANDLED, Some(me.clone()), catcher), GFP_KERNEL)?;
        for _ in 0..5 {
            send(&me, &me, TYPE_HANDLED)?;
        }
        assert_eq!(wait_for(&handler.handler().good, 5), 5);
        let stats = dev.data();
        assert_eq!(stats.tx_packets.load(Relaxed), 5);
        assert_eq!(stats.rx_packets.load(Relaxed), 5);
        assert_eq!(stats.tx_bytes.load(Relaxed), stats.rx_bytes.load(Relaxed));
        // References go before the device: unregistering waits for them.
        drop(handler);
        drop(me);
        {
            let rtnl = rtnl::lock();
            dev.close(&rtnl);
        }
        assert!(!dev.is_running());
        drop(reg);
        Ok(())
    }
}
