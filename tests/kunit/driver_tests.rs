// SPDX-License-Identifier: GPL-2.0

//! A Rust net device driver on the overlay: `pnkloop%d` sends every frame
//! back to itself through NAPI, so a frame transmitted on it must reach a
//! protocol handler bound to it, and its counters must show the traffic.
//! When its ring is full it stops its queue and gives the buffer back to
//! the stack ([`XmitSkb::requeue`]), which retries it once the poll has made
//! room: no frame is lost however fast they are sent.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use kernel::net::{
    driver::{Device, Driver, Stats, TxVerdict, XmitSkb},
    napi::{Napi, NapiPoll, Poll},
    skb::SkBuff,
};
use kernel::prelude::*;
use kernel::{new_spinlock_bh, sync::SpinLockBh};

/// Frames the loop device holds between transmit and receive.
const RING: usize = 64;

#[pin_data]
pub(crate) struct Loop {
    #[pin]
    napi: Napi<Loop>,
    #[pin]
    /// Taken by transmit and `stop` (process context) and by the poll
    /// (softirq): a bottom-half lock.
    ring: SpinLockBh<KVec<SkBuff>>,
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    tx_dropped: AtomicU64,
    tx_busy: AtomicU64,
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    rx_dropped: AtomicU64,
    /// While set the poll takes nothing from the ring, as a stalled device
    /// would, so that tests can fill it.
    hold: AtomicBool,
    /// Whether `Device::get_ref` gave a reference during setup (it must not:
    /// the device is not registered yet).
    ref_in_setup: AtomicBool,
}

impl Loop {
    pub(crate) fn new() -> impl PinInit<Self, Error> {
        try_pin_init!(Loop {
            napi <- Napi::new(),
            ring <- new_spinlock_bh!(KVec::with_capacity(RING, GFP_KERNEL)?),
            tx_packets: AtomicU64::new(0),
            tx_bytes: AtomicU64::new(0),
            tx_dropped: AtomicU64::new(0),
            tx_busy: AtomicU64::new(0),
            rx_packets: AtomicU64::new(0),
            rx_bytes: AtomicU64::new(0),
            rx_dropped: AtomicU64::new(0),
            hold: AtomicBool::new(false),
            ref_in_setup: AtomicBool::new(true),
        })
    }
}

#[vtable]
impl Driver for Loop {
    fn setup(dev: &Device<Self>) -> Result {
        dev.data().ref_in_setup.store(dev.get_ref().is_some(), Relaxed);
        dev.data().napi.add(dev);
        Ok(())
    }

    fn open(dev: &Device<Self>) -> Result {
        dev.data().napi.enable()?;
        dev.set_carrier(true);
        Ok(())
    }

    fn stop(dev: &Device<Self>) -> Result {
        dev.set_carrier(false);
        dev.data().napi.disable();
        // Frames still in the ring are dropped, as a real device's would
        // be; each is freed after the (bottom-half) ring lock is released.
        let me = dev.data();
        loop {
            let Some(skb) = me.ring.lock().pop() else {
                break;
            };
            drop(skb);
            me.tx_dropped.fetch_add(1, Relaxed);
        }
        Ok(())
    }

    fn start_xmit<'a>(dev: &Device<Self>, skb: XmitSkb<'a>) -> TxVerdict<'a> {
        let me = dev.data();
        let len = u64::from(skb.len());
        {
            let mut ring = me.ring.lock();
            if ring.len() == ring.capacity() {
                // Full: stop the queue and give this very buffer back; the
                // poll wakes the queue once it has made room.
                dev.stop_queue();
                me.tx_busy.fetch_add(1, Relaxed);
                drop(ring);
                me.napi.schedule();
                return skb.requeue();
            }
            if ring.push_within_capacity(skb.into_skb()).is_err() {
                // Cannot happen (room was checked under the lock); the
                // rejected buffer is freed with the error.
                me.tx_dropped.fetch_add(1, Relaxed);
                return TxVerdict::Done;
            }
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
            rx_dropped: me.rx_dropped.load(Relaxed),
        }
    }
}

impl NapiPoll for Loop {
    fn poll(dev: &Device<Self>, poll: &mut Poll<'_, Self>, budget: i32) -> i32 {
        let me = dev.data();
        let mut done = 0;
        while done < budget && !me.hold.load(Relaxed) {
            let next = {
                let mut ring = me.ring.lock();
                if ring.is_empty() { None } else { ring.remove(0).ok() }
            };
            let Some(skb) = next else { break };
            me.rx_bytes.fetch_add(u64::from(skb.len()), Relaxed);
            // The sender may still hold the buffer (pktgen does): receive a
            // buffer of our own, as GRO changes its header and may take its
            // data apart.
            let received = skb
                .unshare(GFP_ATOMIC)
                .and_then(|skb| skb.into_writable(GFP_ATOMIC))
                .and_then(|skb| poll.receive(skb));
            match received {
                Ok(()) => me.rx_packets.fetch_add(1, Relaxed),
                Err(_) => me.rx_dropped.fetch_add(1, Relaxed),
            };
            done += 1;
        }
        // Wake the stack only once there is room, or it would hand the same
        // buffer back at once, over and over.
        let room = { let ring = me.ring.lock(); ring.len() < ring.capacity() };
        if dev.is_queue_stopped() && room && !me.hold.load(Relaxed) {
            dev.wake_queue();
        }
        if done < budget {
            poll.complete_done(done);
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
        // Enabling twice is refused (it would hit a BUG_ON in the core).
        assert_eq!(dev.data().napi.enable(), Err(EBUSY));
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
        // Closing disabled the context; disabling again does nothing (it
        // would wait forever in the core).
        assert!(!dev.data().napi.is_enabled());
        assert!(!dev.data().napi.disable());
        drop(reg);
        Ok(())
    }

    #[test]
    fn a_counted_device_reference_exists_only_once_registered() -> Result {
        let reg = Registration::<Loop>::register(c"pnkloop%d", Loop::new())?;
        let dev = reg.device();
        assert!(!dev.data().ref_in_setup.load(Relaxed));
        let held = dev.get_ref().ok_or(EINVAL)?;
        // The reference reaches the same device and its driver state.
        assert!(core::ptr::eq(&*held, dev));
        assert_eq!(held.ifindex(), dev.ifindex());
        held.data().hold.store(true, Relaxed);
        assert!(dev.data().hold.load(Relaxed));
        // Unregistering waits for references: drop it first.
        drop(held);
        drop(reg);
        Ok(())
    }

    #[test]
    fn a_full_ring_requeues_the_buffer_and_loses_nothing() -> Result {
        const BURST: u32 = 4 * RING as u32;
        let reg = Registration::<Loop>::register(c"pnkloop%d", Loop::new())?;
        let dev = reg.device();
        {
            let rtnl = rtnl::lock();
            dev.open(&rtnl)?;
        }
        let me = NetDevice::get_by_index(Namespace::init(), dev.ifindex())?;
        let catcher = Catcher { src: dev.mac_addr().ok_or(EINVAL)?, good: AtomicU32::new(0), other: AtomicU32::new(0) };
        let handler = KBox::pin_init(packet::Registration::new(TYPE_HANDLED, Some(me.clone()), catcher), GFP_KERNEL)?;
        // The device stalls: the ring fills, and the driver must stop its
        // queue and give buffers back; the rest wait in the qdisc.
        let stats = dev.data();
        stats.hold.store(true, Relaxed);
        for _ in 0..BURST {
            send(&me, &me, TYPE_HANDLED)?;
        }
        // The ring must have filled, or the test proves nothing.
        assert!(stats.tx_busy.load(Relaxed) > 0);
        assert_eq!(handler.handler().good.load(Relaxed), 0);
        // The device resumes: every frame arrives, once.
        stats.hold.store(false, Relaxed);
        stats.napi.schedule();
        assert_eq!(wait_for(&handler.handler().good, BURST), BURST);
        assert_eq!(handler.handler().other.load(Relaxed), 0);
        assert_eq!(stats.tx_packets.load(Relaxed), u64::from(BURST));
        assert_eq!(stats.tx_dropped.load(Relaxed) + stats.rx_dropped.load(Relaxed), 0);
        drop(handler);
        drop(me);
        {
            let rtnl = rtnl::lock();
            dev.close(&rtnl);
        }
        drop(reg);
        Ok(())
    }
}
